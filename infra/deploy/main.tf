# The one root of every environment: `terraform plan -var-file=env/<env>.tfvars` with the
# state under prefix retail-platform/<env>. An environment's prefix, limits and shapes are in
# shared/platform.yaml (environments.<env>), the declaration the code and the local stack read.

locals {
  platform = yamldecode(file("${path.module}/../../shared/platform.yaml"))
  prefix   = local.platform.environments[var.environment].prefix
  # The one declared location of the environment's data and compute.
  region   = local.platform.environments[var.environment].region
  registry = "${local.region}-docker.pkg.dev/${var.project_id}/${local.prefix}${local.platform.registry}"
}

module "platform" {
  source = "../modules/platform"

  project_id  = var.project_id
  environment = var.environment
  region      = local.region
  labels      = { env = var.environment, app = "retail-platform" }

  function_source_object = var.function_source_object

  images = {
    training = "${local.registry}/training:${var.image_tag}"
    api      = "${local.registry}/api:${var.image_tag}"
  }

  api_invokers = var.api_invokers

  rbac = {
    config_uri      = var.rbac_config_uri
    secret_env_name = var.rbac_secret_env_name
  }

  group_audit_sink = {
    enabled         = var.organization_id != ""
    organization_id = var.organization_id
  }

  desk = {
    access_uri = var.desk_access_uri
    members    = var.desk_members
  }
}
