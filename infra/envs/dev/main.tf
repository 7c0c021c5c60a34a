# Development: prefixed names, small quotas, the API scaled to zero.

locals {
  prefix   = "dev-"
  registry = "${var.region}-docker.pkg.dev/${var.project_id}/${local.prefix}retail"
}

module "platform" {
  source = "../../modules/platform"

  project_id = var.project_id
  region     = var.region
  prefix     = local.prefix
  labels     = { env = "dev", app = "retail-platform" }

  function_source_object = var.function_source_object

  images = {
    training = "${local.registry}/training:${var.image_tag}"
    api      = "${local.registry}/api:${var.image_tag}"
  }

  fetch_limits = { max_streams = 8, max_instances = 8 }

  training = {
    pricing    = { task_count = 2, parallelism = 2, max_retries = 1, timeout_s = 3600, cpu = "2", memory = "4Gi" }
    promotions = { task_count = 1, parallelism = 1, max_retries = 1, timeout_s = 3600, cpu = "2", memory = "4Gi" }
  }

  api = { min_instances = 0, max_instances = 2 }

  rbac = {
    config_uri      = var.rbac_config_uri
    secret_env_name = var.rbac_secret_env_name
  }
}
