# Production: no prefix, the quota-derived fan-out, a warm API, group changes as events.

locals {
  registry = "${var.region}-docker.pkg.dev/${var.project_id}/retail"
}

module "platform" {
  source = "../../modules/platform"

  project_id = var.project_id
  region     = var.region
  labels     = { env = "prod", app = "retail-platform" }

  function_source_object = var.function_source_object

  images = {
    training = "${local.registry}/training:${var.image_tag}"
    api      = "${local.registry}/api:${var.image_tag}"
  }

  # Storage Read API: parallel streams per session and concurrent function instances kept
  # inside the project's quotas; each fetch_chunk instance holds one stream.
  fetch_limits = { max_streams = 32, max_instances = 32 }

  api = { min_instances = 1, max_instances = 20, invokers = var.api_invokers }

  rbac = {
    config_uri      = var.rbac_config_uri
    secret_env_name = var.rbac_secret_env_name
  }

  group_audit_sink = {
    enabled         = var.organization_id != ""
    organization_id = var.organization_id
  }

  schedule_time_zone = var.schedule_time_zone
}
