# One service account per function, job and the API, each granted only what it uses, on the
# single resource where the API allows it (topics, buckets, datasets, secrets, jobs). Creating
# BigQuery jobs and Storage Read sessions can only be granted on the project.

locals {
  # Topics each function publishes to (shared/fetch and shared/training/launch.py).
  function_publishes = {
    plan_fetch        = ["fetch-chunks", "fetch-chunk-ready", "fetch-chunk-done"]
    create_chunk      = ["fetch-chunk-ready", "fetch-chunk-done"]
    fetch_chunk       = ["fetch-chunk-ready", "fetch-chunk-done"]
    finalize_fetch    = ["fetch-complete"]
    launch_training   = []
    schedule_training = ["fetch-requests"]
    sync_rbac         = []
  }

  # Project-level BigQuery roles (jobs and read sessions have no narrower resource).
  function_project_roles = {
    plan_fetch        = ["roles/bigquery.jobUser", "roles/bigquery.readSessionUser"]
    create_chunk      = ["roles/bigquery.jobUser"]
    fetch_chunk       = ["roles/bigquery.readSessionUser"]
    finalize_fetch    = ["roles/bigquery.jobUser"]
    launch_training   = []
    schedule_training = []
    sync_rbac         = ["roles/composer.user"]
  }

  # Dataset roles: read the sources, write chunk tables, drop them at the end.
  function_dataset_roles = {
    plan_fetch     = { source = "roles/bigquery.dataViewer", fetch_tmp = "roles/bigquery.dataViewer" }
    create_chunk   = { source = "roles/bigquery.dataViewer", fetch_tmp = "roles/bigquery.dataEditor" }
    fetch_chunk    = { source = "roles/bigquery.dataViewer", fetch_tmp = "roles/bigquery.dataViewer" }
    finalize_fetch = { source = "roles/bigquery.dataViewer", fetch_tmp = "roles/bigquery.dataEditor" }
  }

  publish_grants = merge([
    for fn, topics in local.function_publishes : { for t in topics : "${fn}/${t}" => { fn = fn, topic = t } }
  ]...)
  project_grants = merge([
    for fn, roles in local.function_project_roles : { for r in roles : "${fn}/${r}" => { fn = fn, role = r } }
  ]...)
  dataset_grants = merge([
    for fn, byds in local.function_dataset_roles : { for ds, r in byds : "${fn}/${ds}" => { fn = fn, dataset = ds, role = r } }
  ]...)
  datasets = {
    source    = google_bigquery_dataset.source.dataset_id
    fetch_tmp = google_bigquery_dataset.fetch_tmp.dataset_id
    results   = google_bigquery_dataset.results.dataset_id
  }

  job_project_roles = ["roles/bigquery.jobUser"]
}

# --------------------------------------------------------------------------- functions

resource "google_service_account" "function" {
  for_each     = local.functions
  account_id   = "${var.prefix}fn-${local.function_sa_id[each.key]}"
  display_name = "Function ${each.key}"
}

resource "google_service_account" "pubsub_invoker" {
  account_id   = "${var.prefix}pubsub-invoker"
  display_name = "Pub/Sub push to the platform's functions"
}

resource "google_pubsub_topic_iam_member" "function_publishes" {
  for_each = local.publish_grants
  topic    = google_pubsub_topic.topic[each.value.topic].id
  role     = "roles/pubsub.publisher"
  member   = "serviceAccount:${google_service_account.function[each.value.fn].email}"
}

resource "google_project_iam_member" "function" {
  for_each = local.project_grants
  project  = var.project_id
  role     = each.value.role
  member   = "serviceAccount:${google_service_account.function[each.value.fn].email}"
}

resource "google_bigquery_dataset_iam_member" "function" {
  for_each   = local.dataset_grants
  dataset_id = local.datasets[each.value.dataset]
  role       = each.value.role
  member     = "serviceAccount:${google_service_account.function[each.value.fn].email}"
}

# Every function keeps state on the data bucket (parts, plans, manifests, markers, digests).
resource "google_storage_bucket_iam_member" "function_data" {
  for_each = local.functions
  bucket   = google_storage_bucket.data.name
  role     = "roles/storage.objectAdmin"
  member   = "serviceAccount:${google_service_account.function[each.key].email}"
}

# launch_training starts the training jobs with per-run overrides, and nothing else.
resource "google_cloud_run_v2_job_iam_member" "launch_runs_job" {
  for_each = google_cloud_run_v2_job.training
  location = var.region
  name     = each.value.name
  role     = "roles/run.jobsExecutorWithOverrides"
  member   = "serviceAccount:${google_service_account.function["launch_training"].email}"
}

# --------------------------------------------------------------------------- training jobs

resource "google_service_account" "job" {
  for_each     = var.training
  account_id   = "${var.prefix}job-${each.key}"
  display_name = "Training job ${each.key}"
}

resource "google_project_iam_member" "job" {
  for_each = { for pair in setproduct(keys(var.training), local.job_project_roles) : "${pair[0]}/${pair[1]}" => pair }
  project  = var.project_id
  role     = each.value[1]
  member   = "serviceAccount:${google_service_account.job[each.value[0]].email}"
}

resource "google_storage_bucket_iam_member" "job_data" {
  for_each = var.training
  bucket   = google_storage_bucket.data.name
  role     = "roles/storage.objectAdmin"
  member   = "serviceAccount:${google_service_account.job[each.key].email}"
}

resource "google_storage_bucket_iam_member" "job_artifacts" {
  for_each = var.training
  bucket   = google_storage_bucket.artifacts.name
  role     = "roles/storage.objectAdmin"
  member   = "serviceAccount:${google_service_account.job[each.key].email}"
}

resource "google_bigquery_dataset_iam_member" "job_results" {
  for_each   = var.training
  dataset_id = google_bigquery_dataset.results.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = "serviceAccount:${google_service_account.job[each.key].email}"
}

# The promotion job reads the promotions and products tables.
resource "google_bigquery_dataset_iam_member" "job_source" {
  for_each   = var.training
  dataset_id = google_bigquery_dataset.source.dataset_id
  role       = "roles/bigquery.dataViewer"
  member     = "serviceAccount:${google_service_account.job[each.key].email}"
}

resource "google_secret_manager_secret_iam_member" "job_keys" {
  for_each  = var.training
  secret_id = google_secret_manager_secret.artifact_keys.id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.job[each.key].email}"
}

# --------------------------------------------------------------------------- API

resource "google_service_account" "api" {
  account_id   = "${var.prefix}api"
  display_name = "Prediction API"
}

resource "google_project_iam_member" "api_jobs" {
  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = "serviceAccount:${google_service_account.api.email}"
}

resource "google_bigquery_dataset_iam_member" "api_reads" {
  for_each   = toset(["source", "results"])
  dataset_id = local.datasets[each.key]
  role       = "roles/bigquery.dataViewer"
  member     = "serviceAccount:${google_service_account.api.email}"
}

resource "google_storage_bucket_iam_member" "api_artifacts" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.api.email}"
}

resource "google_secret_manager_secret_iam_member" "api_keys" {
  secret_id = google_secret_manager_secret.artifact_keys.id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.api.email}"
}

resource "google_cloud_run_v2_service_iam_member" "api_invoker" {
  for_each = toset(var.api.invokers)
  location = var.region
  name     = google_cloud_run_v2_service.api.name
  role     = "roles/run.invoker"
  member   = each.value
}
