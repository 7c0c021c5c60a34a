output "api_url" {
  description = "URL of the prediction API (callers need roles/run.invoker)."
  value       = google_cloud_run_v2_service.api.uri
}

output "data_bucket" {
  description = "Bucket of fetched Parquet and training intermediates."
  value       = google_storage_bucket.data.name
}

output "artifacts_bucket" {
  description = "Versioned bucket of encrypted model artifacts, pointers and reports."
  value       = google_storage_bucket.artifacts.name
}

output "topics" {
  description = "Pub/Sub topic ids by their base name in shared/platform.yaml."
  value       = { for name, topic in google_pubsub_topic.topic : name => topic.id }
}

output "training_jobs" {
  description = "Cloud Run job names by training job."
  value       = { for name, job in google_cloud_run_v2_job.training : name => job.name }
}

output "service_accounts" {
  description = "Service account of each deployable."
  value       = { for name, sa in google_service_account.deployable : name => sa.email }
}

output "rbac_service_account" {
  description = "Identity of the RBAC reconciler: register it as Admin in Airflow and as a Groups Reader in Workspace."
  value       = google_service_account.deployable["sync_rbac"].email
}

output "artifact_keys_secret" {
  description = "Secret Manager secret holding the artifact keys (add a version out of band)."
  value       = google_secret_manager_secret.secret["artifact_keys"].id
}

output "desk_url" {
  description = "URL of the desk (behind IAP), or null when no desk is deployed."
  value       = local.desk ? google_cloud_run_v2_service.desk[0].uri : null
}
