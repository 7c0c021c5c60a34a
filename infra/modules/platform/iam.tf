# One service account per deployable (function, job, the API), each granted exactly what
# shared/platform.yaml lists for it, on the narrowest resource the API allows. Nothing here
# names a role for a deployable: tests/unit/test_iam_contract.py checks the declared grants
# against the Google API calls each deployable makes in the end-to-end run.

locals {
  # Resource of each grant scope, by the key the declaration uses.
  grant_targets = {
    topics   = { for name, topic in google_pubsub_topic.topic : name => topic.id }
    buckets  = { data = google_storage_bucket.data.name, artifacts = google_storage_bucket.artifacts.name, source = google_storage_bucket.source.name }
    datasets = { source = google_bigquery_dataset.source.dataset_id, results = google_bigquery_dataset.results.dataset_id, fetch_tmp = google_bigquery_dataset.fetch_tmp.dataset_id }
    secrets  = { for key, secret in google_secret_manager_secret.secret : key => secret.id }
    jobs     = { for name, job in google_cloud_run_v2_job.training : name => job.name }
  }

  # Every grant as {who, scope, target, role}; secrets that are not created are skipped.
  grants = flatten([
    for who in keys(local.platform.grants) : concat(
      [for role in try(local.platform.grants[who].project, []) : { who = who, scope = "project", target = var.project_id, role = role }],
      flatten([
        for scope in ["topics", "buckets", "datasets", "secrets", "jobs"] : [
          for pair in flatten([
            for target in keys(try(local.platform.grants[who][scope], {})) : [
              # A target's grant is one role or a list of roles.
              for role in flatten([local.platform.grants[who][scope][target]]) : { target = target, role = role }
            ]
            ]) : {
            who = who, scope = scope, target = pair.target, role = pair.role
          } if scope != "secrets" || contains(keys(local.secrets), pair.target)
        ]
      ])
    )
  ])
  grants_in = { for scope in ["project", "topics", "buckets", "datasets", "secrets", "jobs"] : scope => {
    for g in local.grants : "${g.who}/${g.target}/${g.role}" => g if g.scope == scope
  } }
}

resource "google_service_account" "deployable" {
  for_each     = toset(keys(local.deployables))
  account_id   = "${local.prefix}${local.deployables[each.key].account}"
  display_name = "${local.deployables[each.key].kind} ${each.key}"
}

resource "google_service_account" "pubsub_invoker" {
  account_id   = "${local.prefix}${local.platform.push_invoker_account}"
  display_name = "Pub/Sub push to the platform's functions"
}

# The functions' build identity (shared/platform.yaml build_account) and its grants.
resource "google_service_account" "build" {
  account_id   = "${local.prefix}${local.platform.build_account.account}"
  display_name = "Cloud Build: the platform's functions"
}

resource "google_project_iam_member" "build" {
  for_each = toset(local.platform.build_account.project)
  project  = var.project_id
  role     = each.value
  member   = "serviceAccount:${google_service_account.build.email}"
}

resource "google_storage_bucket_iam_member" "build" {
  for_each = local.platform.build_account.buckets
  bucket   = local.grant_targets.buckets[each.key]
  role     = each.value
  member   = "serviceAccount:${google_service_account.build.email}"
}

resource "google_project_iam_member" "grant" {
  for_each = local.grants_in.project
  project  = var.project_id
  role     = each.value.role
  member   = "serviceAccount:${google_service_account.deployable[each.value.who].email}"
}

resource "google_pubsub_topic_iam_member" "grant" {
  for_each = local.grants_in.topics
  topic    = local.grant_targets.topics[each.value.target]
  role     = each.value.role
  member   = "serviceAccount:${google_service_account.deployable[each.value.who].email}"
}

resource "google_storage_bucket_iam_member" "grant" {
  for_each = local.grants_in.buckets
  bucket   = local.grant_targets.buckets[each.value.target]
  role     = each.value.role
  member   = "serviceAccount:${google_service_account.deployable[each.value.who].email}"
}

resource "google_bigquery_dataset_iam_member" "grant" {
  for_each   = local.grants_in.datasets
  dataset_id = local.grant_targets.datasets[each.value.target]
  role       = each.value.role
  member     = "serviceAccount:${google_service_account.deployable[each.value.who].email}"
}

resource "google_secret_manager_secret_iam_member" "grant" {
  for_each  = local.grants_in.secrets
  secret_id = local.grant_targets.secrets[each.value.target]
  role      = each.value.role
  member    = "serviceAccount:${google_service_account.deployable[each.value.who].email}"
}

resource "google_cloud_run_v2_job_iam_member" "grant" {
  for_each = local.grants_in.jobs
  location = var.region
  name     = local.grant_targets.jobs[each.value.target]
  role     = each.value.role
  member   = "serviceAccount:${google_service_account.deployable[each.value.who].email}"
}

# Callers of the API (not deployables of the platform).
resource "google_cloud_run_v2_service_iam_member" "api_invoker" {
  for_each = toset(var.api_invokers)
  location = var.region
  name     = google_cloud_run_v2_service.api.name
  role     = "roles/run.invoker"
  member   = each.value
}
