# The Pub/Sub topology: the same names as shared/topology.py (a test holds the two together).
# Functions are HTTP functions reached by our own push subscriptions, so retry and dead-letter
# policies are ours to set, exactly as on the local emulator.

locals {
  topics = [
    "fetch-requests",
    "fetch-chunks",
    "fetch-chunk-ready",
    "fetch-chunk-done",
    "fetch-complete",
    "rbac-sync",
    "training-schedule",
    "dead-letter",
  ]

  push_subscriptions = {
    "plan-fetch"        = { topic = "fetch-requests", entry_point = "plan_fetch", ack_deadline_s = 120 }
    "create-chunk"      = { topic = "fetch-chunks", entry_point = "create_chunk", ack_deadline_s = 600 }
    "fetch-chunk"       = { topic = "fetch-chunk-ready", entry_point = "fetch_chunk", ack_deadline_s = 600 }
    "finalize-fetch"    = { topic = "fetch-chunk-done", entry_point = "finalize_fetch", ack_deadline_s = 120 }
    "launch-training"   = { topic = "fetch-complete", entry_point = "launch_training", ack_deadline_s = 120 }
    "schedule-training" = { topic = "training-schedule", entry_point = "schedule_training", ack_deadline_s = 60 }
    "sync-rbac"         = { topic = "rbac-sync", entry_point = "sync_rbac", ack_deadline_s = 300 }
  }
}

resource "google_pubsub_topic" "topic" {
  #checkov:skip=CKV_GCP_83:Messages carry run metadata (table names, offsets, URIs), never row data; Google-managed encryption.
  for_each = toset(local.topics)
  name     = "${var.prefix}${each.value}"
  labels   = var.labels
}

resource "google_pubsub_subscription" "dead_letter_inspect" {
  name                       = "${var.prefix}dead-letter-inspect"
  topic                      = google_pubsub_topic.topic["dead-letter"].id
  message_retention_duration = "604800s"
}

resource "google_pubsub_subscription" "push" {
  for_each             = local.push_subscriptions
  name                 = "${var.prefix}${each.key}"
  topic                = google_pubsub_topic.topic[each.value.topic].id
  ack_deadline_seconds = each.value.ack_deadline_s

  push_config {
    push_endpoint = "${google_cloudfunctions2_function.function[each.value.entry_point].service_config[0].uri}/projects/${var.project_id}/topics/${var.prefix}${each.value.topic}"
    oidc_token {
      service_account_email = google_service_account.pubsub_invoker.email
    }
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.topic["dead-letter"].id
    max_delivery_attempts = 5
  }
}

# The Pub/Sub service agent forwards undeliverable messages to the dead-letter topic.
data "google_project" "this" {}

resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  topic  = google_pubsub_topic.topic["dead-letter"].id
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  for_each     = google_pubsub_subscription.push
  subscription = each.value.id
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}
