# The desk (shared/desk/): the API's image and identity as a second Cloud Run service, serving
# only the desk's pages (RETAIL_DESK_ONLY: the JSON API stays behind Cloud Run IAM on the API
# service), behind Identity-Aware Proxy enabled on the service itself. IAP lets through the
# principals of var.desk.members; the desk verifies IAP's signed header on every request
# (audience: this service) and decides what each person sees from Google Groups
# (var.desk.access_uri). Deployed only when an access mapping is given.
#
# iap_enabled is a preview argument of Cloud Run (google-beta provider, launch_stage BETA).
# Before the first apply: enable iap.googleapis.com, add a version to the desk-session secret
# (README, "The desk"), and make the API's service account a Groups Reader in Workspace.

locals {
  desk         = var.desk.access_uri != ""
  desk_service = "${local.prefix}${local.platform.desk.service}"
  # The audience of IAP's signed header for a Cloud Run service with IAP enabled on it.
  desk_facts = {
    desk_access_uri   = var.desk.access_uri
    desk_iap_audience = "/projects/${data.google_project.this.number}/locations/${var.region}/services/${local.desk_service}"
    desk_only         = "1"
  }
  desk_env = merge(
    local.env["api"],
    { for var_name, fact in local.platform.desk.env : var_name => local.desk_facts[fact] },
  )
}

resource "google_cloud_run_v2_service" "desk" {
  provider            = google-beta
  count               = local.desk ? 1 : 0
  name                = local.desk_service
  location            = var.region
  labels              = var.labels
  deletion_protection = false
  launch_stage        = "BETA"
  iap_enabled         = true
  ingress             = "INGRESS_TRAFFIC_ALL"

  template {
    service_account = google_service_account.deployable["api"].email
    scaling {
      min_instance_count = 0
      max_instance_count = local.settings.api.max_instances
    }

    containers {
      image = var.images.api
      ports {
        container_port = 8080
      }
      resources {
        limits = {
          cpu    = "1"
          memory = "1Gi"
        }
      }
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
        for_each = local.desk_env
        content {
          name  = env.key
          value = env.value
        }
      }
      # The session cookie's key, read by Cloud Run from Secret Manager (never in state).
      dynamic "env" {
        for_each = local.platform.desk.secret_env
        content {
          name = env.key
          value_source {
            secret_key_ref {
              secret  = google_secret_manager_secret.secret[env.value].secret_id
              version = "latest"
            }
          }
        }
      }
    }
  }
}

# IAP calls the service as its service agent once a person is let through.
resource "google_cloud_run_v2_service_iam_member" "desk_iap" {
  count    = local.desk ? 1 : 0
  location = var.region
  name     = google_cloud_run_v2_service.desk[0].name
  role     = "roles/run.invoker"
  member   = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-iap.iam.gserviceaccount.com"
}

# Who IAP lets reach the desk at all; what each may see or decide is the desk's own grant.
resource "google_iap_web_cloud_run_service_iam_member" "desk" {
  for_each               = toset(local.desk ? var.desk.members : [])
  project                = var.project_id
  location               = var.region
  cloud_run_service_name = google_cloud_run_v2_service.desk[0].name
  role                   = "roles/iap.httpsResourceAccessor"
  member                 = each.value
}
