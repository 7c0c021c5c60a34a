# Secrets are declared here; their values are added out of band (gcloud secrets versions add),
# so they never pass through Terraform state.
#   artifact-keys: "k2:<fernet key>,k1:<older key>" - newest first; jobs encrypt with the newest,
#                  the API and jobs decrypt with any (rotation).
#   airflow:       the Airflow password or token the RBAC config names (basic/bearer auth only).

resource "google_secret_manager_secret" "artifact_keys" {
  secret_id = "${var.prefix}artifact-keys"
  labels    = var.labels
  replication {
    auto {}
  }
}

resource "google_secret_manager_secret" "airflow" {
  count     = var.rbac.secret_env_name != "" ? 1 : 0
  secret_id = "${var.prefix}airflow-credentials"
  labels    = var.labels
  replication {
    auto {}
  }
}

resource "google_secret_manager_secret_iam_member" "rbac_reads_airflow" {
  count     = var.rbac.secret_env_name != "" ? 1 : 0
  secret_id = google_secret_manager_secret.airflow[0].id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.function["sync_rbac"].email}"
}
