# One 2nd-gen function per entry point of functions/main.py, each with its own service account
# (iam.tf), reached by our own push subscription (pubsub.tf) so retries and dead letters are
# the ones the code is tested with.

locals {
  functions = { for name, sub in local.push_subscriptions : sub.entry_point => merge(sub, { subscription = name }) }

  # Short service-account ids (6-30 characters with the prefix).
  function_sa_id = {
    plan_fetch        = "plan"
    create_chunk      = "chunk"
    fetch_chunk       = "fetch"
    finalize_fetch    = "finalize"
    launch_training   = "launch"
    schedule_training = "schedule"
    sync_rbac         = "rbac"
  }

  # fetch_chunk holds one Storage Read stream per instance: its instances are the fetch's
  # parallelism, capped by quota. One reconcile at a time for RBAC.
  function_shape = {
    plan_fetch        = { memory = "512Mi", max_instances = 10 }
    create_chunk      = { memory = "512Mi", max_instances = var.fetch_limits.max_instances }
    fetch_chunk       = { memory = "1Gi", max_instances = var.fetch_limits.max_instances }
    finalize_fetch    = { memory = "512Mi", max_instances = 10 }
    launch_training   = { memory = "256Mi", max_instances = 5 }
    schedule_training = { memory = "256Mi", max_instances = 5 }
    sync_rbac         = { memory = "512Mi", max_instances = 1 }
  }

  # Every function reads Settings (shared/settings.py); each variable is set explicitly.
  function_env = {
    GOOGLE_CLOUD_PROJECT  = var.project_id
    BIGQUERY_LOCATION     = var.bigquery_location
    RETAIL_REGION         = var.region
    RETAIL_PREFIX         = var.prefix
    RETAIL_DATA_BUCKET    = google_storage_bucket.data.name
    RETAIL_ARTIFACTS      = "gs://${google_storage_bucket.artifacts.name}"
    RETAIL_TEMP_DATASET   = google_bigquery_dataset.fetch_tmp.dataset_id
    RETAIL_MAX_STREAMS    = tostring(var.fetch_limits.max_streams)
    RETAIL_TIME_BUDGET_S  = tostring(var.fetch_limits.time_budget_s)
    RETAIL_PART_MAX_ROWS  = "1000000"
    RETAIL_PART_TARGET_MB = "32"
  }

  function_extra_env = {
    sync_rbac = { RETAIL_RBAC_CONFIG = var.rbac.config_uri }
  }
}

resource "google_cloudfunctions2_function" "function" {
  for_each = local.functions
  name     = "${var.prefix}${replace(each.key, "_", "-")}"
  location = var.region
  labels   = var.labels

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
    max_instance_count               = local.function_shape[each.key].max_instances
    max_instance_request_concurrency = 1
    available_memory                 = local.function_shape[each.key].memory
    timeout_seconds                  = 540
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.function[each.key].email
    environment_variables            = merge(local.function_env, lookup(local.function_extra_env, each.key, {}))

    # The Airflow password or token the RBAC config names, from Secret Manager, never in state.
    dynamic "secret_environment_variables" {
      for_each = each.key == "sync_rbac" && var.rbac.secret_env_name != "" ? [1] : []
      content {
        key        = var.rbac.secret_env_name
        project_id = var.project_id
        secret     = google_secret_manager_secret.airflow[0].secret_id
        version    = "latest"
      }
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
