# The Pub/Sub topology of shared/platform.yaml. Functions are HTTP functions reached by our own
# push subscriptions, so retry and dead-letter policies are ours to set, exactly as on the local
# emulator. No subscription expires: an idle one (create-chunk between chunk_tables runs, the
# never-pulled dead-letter-inspect) would otherwise be deleted after 31 days.

resource "google_pubsub_topic" "topic" {
  #checkov:skip=CKV_GCP_83:Messages carry run metadata (table names, offsets, URIs), never row data; Google-managed encryption.
  for_each = toset(local.platform.topics)
  name     = "${local.prefix}${each.value}"
  labels   = var.labels
}

resource "google_pubsub_subscription" "dead_letter_inspect" {
  name                       = "${local.prefix}${local.platform.dead_letter.subscription}"
  topic                      = google_pubsub_topic.topic[local.platform.dead_letter.topic].id
  message_retention_duration = local.platform.dead_letter.retention
  labels                     = var.labels

  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_subscription" "push" {
  # for_each over keys: a decoded YAML mapping is an object, which for_each does not take.
  for_each                   = toset(keys(local.platform.subscriptions))
  name                       = "${local.prefix}${each.key}"
  topic                      = google_pubsub_topic.topic[local.subscriptions[each.key].topic].id
  ack_deadline_seconds       = local.subscriptions[each.key].ack_deadline_s
  message_retention_duration = local.platform.subscription_policy.retention
  labels                     = var.labels

  push_config {
    push_endpoint = "${google_cloudfunctions2_function.function[local.subscriptions[each.key].entry_point].service_config[0].uri}/projects/${var.project_id}/topics/${local.prefix}${local.subscriptions[each.key].topic}"
    oidc_token {
      service_account_email = google_service_account.pubsub_invoker.email
      # What the function accepts: its own URL (Cloud Run's default audience). Stated, so a
      # push endpoint with a path never becomes the audience by accident.
      audience = google_cloudfunctions2_function.function[local.subscriptions[each.key].entry_point].service_config[0].uri
    }
  }

  expiration_policy {
    ttl = ""
  }

  retry_policy {
    minimum_backoff = "${local.platform.subscription_policy.min_backoff_s}s"
    maximum_backoff = "${local.platform.subscription_policy.max_backoff_s}s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.topic[local.platform.dead_letter.topic].id
    max_delivery_attempts = local.platform.subscription_policy.max_delivery_attempts
  }
}

# The Pub/Sub service agent forwards undeliverable messages to the dead-letter topic.
data "google_project" "this" {
  project_id = var.project_id
}

resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  topic  = google_pubsub_topic.topic[local.platform.dead_letter.topic].id
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  for_each     = google_pubsub_subscription.push
  subscription = each.value.id
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}
