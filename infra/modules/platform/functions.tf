# One 2nd-gen function per entry point of functions/main.py, each with its own service account
# (iam.tf), reached by our own push subscription (pubsub.tf) so retries and dead letters are
# the ones the code is tested with. Shapes and variables come from shared/platform.yaml.

resource "google_cloudfunctions2_function" "function" {
  for_each = toset(keys(local.functions))
  name     = "${local.prefix}${replace(each.key, "_", "-")}"
  location = var.region
  labels   = var.labels

  build_config {
    runtime     = "python311"
    entry_point = each.key
    # Built as our own identity, not the default compute account (no build rights on new
    # projects); it needs its grants before the first build.
    service_account = google_service_account.build.id
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = var.function_source_object
      }
    }
  }

  service_config {
    # The fetch functions' instances and requests per instance are the environment's
    # fetch_limits ("fetch_instances", "fetch_concurrency" in the declaration): the widest run
    # is in flight at once. Beyond that an instance answers 429 and Pub/Sub retries (the
    # subscription's attempts are sized for it). Serving more than one request at once needs
    # a whole CPU.
    max_instance_count               = local.function_shapes[each.key].instances
    max_instance_request_concurrency = local.function_shapes[each.key].concurrency
    available_cpu                    = local.function_shapes[each.key].concurrency > 1 ? "1" : null
    available_memory                 = local.functions[each.key].memory
    timeout_seconds                  = 540
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.deployable[each.key].email
    environment_variables            = local.env[each.key]

    # The Airflow password or token the RBAC config names, from Secret Manager, never in state.
    dynamic "secret_environment_variables" {
      for_each = each.key == "sync_rbac" && var.rbac.secret_env_name != "" ? [1] : []
      content {
        key        = var.rbac.secret_env_name
        project_id = var.project_id
        secret     = google_secret_manager_secret.secret["airflow"].secret_id
        version    = "latest"
      }
    }
  }

  # A function whose environment references a secret is deployed only if its runtime account
  # can read that secret then: the grant first (sync_rbac's Airflow secret).
  depends_on = [
    google_secret_manager_secret_iam_member.grant,
    google_project_iam_member.build,
    google_storage_bucket_iam_member.build,
  ]
}

resource "google_cloud_run_service_iam_member" "pubsub_invokes_function" {
  for_each = google_cloudfunctions2_function.function
  location = var.region
  service  = each.value.service_config[0].service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.pubsub_invoker.email}"
}
