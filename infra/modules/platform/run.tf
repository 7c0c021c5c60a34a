# The training jobs (Cloud Run jobs, started per fetch run by launch_training with the manifest
# URI and run id as overrides) and the prediction API (a Cloud Run service behind IAM). Their
# environments come from shared/platform.yaml (local.env), as on the local stack.

resource "google_cloud_run_v2_job" "training" {
  for_each            = toset(keys(local.jobs))
  name                = "${local.prefix}${each.key}"
  location            = var.region
  labels              = var.labels
  deletion_protection = false

  template {
    task_count  = local.settings.training[each.key].task_count
    parallelism = local.settings.training[each.key].parallelism

    template {
      service_account = google_service_account.deployable[each.key].email
      max_retries     = local.settings.training[each.key].max_retries
      timeout         = "${local.settings.training[each.key].timeout_s}s"

      containers {
        image   = var.images.training
        command = ["python", "-m", local.jobs[each.key].module]
        resources {
          limits = {
            cpu    = local.settings.training[each.key].cpu
            memory = local.settings.training[each.key].memory
          }
        }
        dynamic "env" {
          for_each = local.env[each.key]
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
  name                = "${local.prefix}api"
  location            = var.region
  labels              = var.labels
  deletion_protection = false
  # Reached by callers with run.invoker (Cloud Run IAM); unauthenticated requests are refused.
  ingress = "INGRESS_TRAFFIC_ALL"

  template {
    service_account = google_service_account.deployable["api"].email
    scaling {
      min_instance_count = local.settings.api.min_instances
      max_instance_count = local.settings.api.max_instances
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
      # Start-up and liveness on /healthz: the service is up before any model exists (a fresh
      # project). /readyz answers 503 with the reason until a model is loaded; predictions too.
      startup_probe {
        http_get {
          path = "/healthz"
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
        for_each = local.env["api"]
        content {
          name  = env.key
          value = env.value
        }
      }
    }
  }
}

# Images of the jobs and the API; Cloud Build pushes here (created at bootstrap, README).
resource "google_artifact_registry_repository" "images" {
  #checkov:skip=CKV_GCP_84:Images hold code only, no data or secrets; Google-managed encryption.
  location      = var.region
  repository_id = "${local.prefix}${local.platform.registry}"
  format        = "DOCKER"
  description   = "Training job and prediction API images, tagged by commit."
  labels        = var.labels
}
