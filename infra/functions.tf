# One 2nd-gen function per entry point of functions/main.py, each with its own service account.

resource "google_storage_bucket" "source" {
  name                        = "${var.project_id}-${var.prefix}function-source"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  versioning {
    enabled = true
  }
}

resource "google_storage_bucket" "data" {
  name                        = "${var.project_id}-${var.prefix}data"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  versioning {
    enabled = true
  }
}

resource "google_service_account" "function" {
  for_each     = local.push_subscriptions
  account_id   = "${var.prefix}fn-${replace(each.key, "_", "-")}"
  display_name = "Function ${each.value.entry_point}"
}

resource "google_cloudfunctions2_function" "function" {
  for_each = { for sub in local.push_subscriptions : sub.entry_point => sub }
  name     = "${var.prefix}${replace(each.key, "_", "-")}"
  location = var.region

  build_config {
    runtime     = "python311"
    entry_point = each.key
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = var.function_source_object
      }
    }
  }

  service_config {
    max_instance_count    = var.fetch_limits.max_instances
    available_memory      = "1Gi"
    timeout_seconds       = 540
    ingress_settings      = "ALLOW_INTERNAL_ONLY"
    service_account_email = google_service_account.function[replace(each.key, "_", "-")].email
    environment_variables = {
      GOOGLE_CLOUD_PROJECT = var.project_id
      RETAIL_DATA_BUCKET   = google_storage_bucket.data.name
      RETAIL_TEMP_DATASET  = google_bigquery_dataset.fetch_tmp.dataset_id
      RETAIL_MAX_STREAMS   = tostring(var.fetch_limits.max_streams)
      RETAIL_TIME_BUDGET_S = tostring(var.fetch_limits.time_budget_s)
    }
  }
}

resource "google_cloud_run_service_iam_member" "pubsub_invokes_function" {
  for_each = google_cloudfunctions2_function.function
  location = var.region
  service  = each.value.service_config[0].service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.pubsub_invoker.email}"
}
