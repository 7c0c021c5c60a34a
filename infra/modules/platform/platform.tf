# The one declaration of the platform (shared/platform.yaml): names, topology, each deployable's
# environment and grants, and this environment's settings. The code and the local stack read
# the same file, so a name, a variable or a grant cannot differ between them and this module.

locals {
  platform = yamldecode(file("${path.module}/../../../shared/platform.yaml"))
  settings = local.platform.environments[var.environment]
  prefix   = local.settings.prefix

  deployables = local.platform.deployables
  functions   = { for name, d in local.deployables : name => d if d.kind == "function" }
  jobs        = { for name, d in local.deployables : name => d if d.kind == "job" }
  # shared/platform.py function_shape() resolves the same two numbers.
  function_shapes = {
    for name, d in local.functions : name => {
      instances = tonumber(d.max_instances == "fetch_instances" ? local.settings.fetch_limits.max_instances : d.max_instances)
      concurrency = tonumber(
        lookup(d, "concurrency", 1) == "fetch_concurrency"
        ? local.settings.fetch_limits.concurrency
        : lookup(d, "concurrency", 1)
      )
    }
  }

  subscriptions = local.platform.subscriptions

  # The values the deployables' variables name (shared/platform.py facts() computes the same).
  source_dataset = google_bigquery_dataset.source.dataset_id
  facts = {
    project              = var.project_id
    environment          = var.environment
    region               = var.region
    prefix               = local.prefix
    bigquery_location    = var.region
    data_bucket          = google_storage_bucket.data.name
    artifacts            = "gs://${google_storage_bucket.artifacts.name}"
    fetch_tmp_dataset    = google_bigquery_dataset.fetch_tmp.dataset_id
    results_dataset      = google_bigquery_dataset.results.dataset_id
    max_streams          = tostring(local.settings.fetch_limits.max_streams)
    time_budget_s        = tostring(local.settings.fetch_limits.time_budget_s)
    part_max_rows        = tostring(local.settings.part_max_rows)
    part_target_mb       = tostring(local.settings.part_target_mb)
    claim_lease_s        = tostring(local.settings.claim_lease_s)
    iam_propagation_s    = tostring(local.platform.iam_propagation_s)
    fetch_destinations   = "gs://${google_storage_bucket.data.name}/fetch/"
    model_poll_s         = tostring(local.settings.model_poll_s)
    promotions_table     = "${var.project_id}.${local.source_dataset}.promotions"
    products_table       = "${var.project_id}.${local.source_dataset}.products"
    stores_table         = "${var.project_id}.${local.source_dataset}.stores"
    artifact_keys_secret = google_secret_manager_secret.secret["artifact_keys"].id
    rbac_config_uri      = var.rbac.config_uri
  }

  # Each deployable's environment, exactly as the local stack builds it.
  env = {
    for name, d in local.deployables : name => merge(
      { for var_name, fact in local.platform.env[d.kind] : var_name => local.facts[fact] },
      { for var_name, fact in try(local.platform.env.extra[name], {}) : var_name => local.facts[fact] },
    )
  }
}
