output "api_url" {
  description = "URL of the prediction API."
  value       = module.platform.api_url
}

output "rbac_service_account" {
  description = "Register this identity as Admin in Airflow and as a Groups Reader in Workspace."
  value       = module.platform.rbac_service_account
}

output "artifact_keys_secret" {
  description = "Add the artifact keys as a version of this secret."
  value       = module.platform.artifact_keys_secret
}

output "desk_url" {
  description = "URL of the desk behind IAP (null without desk_access_uri); its service account (the API's) must be a Groups Reader in Workspace."
  value       = module.platform.desk_url
}
