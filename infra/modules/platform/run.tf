# The training jobs (Cloud Run jobs, started per fetch run by launch_training with the manifest
# URI and run id as overrides) and the prediction API (a Cloud Run service behind IAM).

locals {
  transactions_table = "${var.project_id}.${google_bigquery_dataset.source.dataset_id}.transactions"

  # RETAIL_MANIFEST_URI and RETAIL_RUN_ID are per-execution overrides (shared/training/launch.py).
  job_env = {
    GOOGLE_CLOUD_PROJECT        = var.project_id
    BIGQUERY_LOCATION           = var.bigquery_location
    RETAIL_REGION               = var.region
    RETAIL_PREFIX               = var.prefix
    RETAIL_DATA_BUCKET          = google_storage_bucket.data.name
    RETAIL_ARTIFACTS            = "gs://${google_storage_bucket.artifacts.name}"
    RETAIL_RESULTS_DATASET      = google_bigquery_dataset.results.dataset_id
    RETAIL_PROMOTIONS_TABLE     = "${var.project_id}.${google_bigquery_dataset.source.dataset_id}.promotions"
    RETAIL_PRODUCTS_TABLE       = "${var.project_id}.${google_bigquery_dataset.source.dataset_id}.products"
    RETAIL_ARTIFACT_KEYS_SECRET = google_secret_manager_secret.artifact_keys.id
  }

  api_env = {
    GOOGLE_CLOUD_PROJECT        = var.project_id
    BIGQUERY_LOCATION           = var.bigquery_location
    RETAIL_DATA_BUCKET          = google_storage_bucket.data.name
    RETAIL_ARTIFACTS            = "gs://${google_storage_bucket.artifacts.name}"
    RETAIL_RESULTS_DATASET      = google_bigquery_dataset.results.dataset_id
    RETAIL_STORES_TABLE         = "${var.project_id}.${google_bigquery_dataset.source.dataset_id}.stores"
    RETAIL_ARTIFACT_KEYS_SECRET = google_secret_manager_secret.artifact_keys.id
    RETAIL_MODEL_POLL_S         = "30"
  }
}

resource "google_cloud_run_v2_job" "training" {
  for_each            = var.training
  name                = "${var.prefix}${each.key}"
  location            = var.region
  labels              = var.labels
  deletion_protection = false

  template {
    task_count  = each.value.task_count
    parallelism = each.value.parallelism

    template {
      service_account = google_service_account.job[each.key].email
      max_retries     = each.value.max_retries
      timeout         = "${each.value.timeout_s}s"

      containers {
        image   = var.images.training
        command = ["python", "-m", "jobs.${each.key}"]
        resources {
          limits = {
            cpu    = each.value.cpu
            memory = each.value.memory
          }
        }
        dynamic "env" {
          for_each = local.job_env
          content {
            name  = env.key
            value = env.value
          }
        }
      }
    }
  }
}

resource "google_cloud_run_v2_service" "api" {
  name                = "${var.prefix}api"
  location            = var.region
  labels              = var.labels
  deletion_protection = false
  # Reached by callers with run.invoker (Cloud Run IAM); unauthenticated requests are refused.
  ingress = "INGRESS_TRAFFIC_ALL"

  template {
    service_account = google_service_account.api.email
    scaling {
      min_instance_count = var.api.min_instances
      max_instance_count = var.api.max_instances
    }

    containers {
      image = var.images.api
      ports {
        container_port = 8080
      }
      resources {
        limits = {
          cpu    = "2"
          memory = "1Gi"
        }
      }
      startup_probe {
        http_get {
          path = "/readyz"
        }
        period_seconds    = 5
        failure_threshold = 24
      }
      liveness_probe {
        http_get {
          path = "/healthz"
        }
      }
      dynamic "env" {
        for_each = local.api_env
        content {
          name  = env.key
          value = env.value
        }
      }
    }
  }
}

# Images of the jobs and the API; Cloud Build pushes here (created once at bootstrap, README).
resource "google_artifact_registry_repository" "images" {
  #checkov:skip=CKV_GCP_84:Images hold code only, no data or secrets; Google-managed encryption.
  location      = var.region
  repository_id = "${var.prefix}retail"
  format        = "DOCKER"
  description   = "Training job and prediction API images, tagged by commit."
  labels        = var.labels
}
