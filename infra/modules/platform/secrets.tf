# Secrets are declared here; their values are added out of band (gcloud secrets versions add,
# README bootstrap), so they never pass through Terraform state.
#   artifact-keys: "k2:<fernet key>,k1:<older key>" - newest first; jobs encrypt with the newest,
#                  the API and jobs decrypt with any (rotation).
#   airflow-credentials: the Airflow password or token the RBAC config names (basic/bearer auth
#                  only; created when rbac.secret_env_name is set).
#   desk-session:  the key that signs the desk's session cookies (32+ random bytes; created
#                  when desk.access_uri is set; Cloud Run reads it into the desk's environment).

locals {
  # Secrets created only when what reads them is deployed.
  optional_secrets = { airflow = var.rbac.secret_env_name != "", desk_session = var.desk.access_uri != "" }
  secrets          = { for key, base in local.platform.secrets : key => base if lookup(local.optional_secrets, key, true) }
}

resource "google_secret_manager_secret" "secret" {
  for_each  = toset(keys(local.secrets))
  secret_id = "${local.prefix}${local.secrets[each.key]}"
  labels    = var.labels
  replication {
    auto {}
  }
}
