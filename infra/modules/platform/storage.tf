# Two buckets: fetched data (large, short-lived, so no versioning but a lifecycle) and model
# artifacts (small, encrypted, versioned so a bad run can be rolled back by its pointer).

resource "google_storage_bucket" "source" {
  #checkov:skip=CKV_GCP_62:Access logs of a build-artifact bucket go to Cloud Audit Logs; no separate log bucket.
  name                        = "${var.project_id}-${local.prefix}${local.platform.buckets.source}"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  labels                      = var.labels
  versioning {
    enabled = true
  }
}

resource "google_storage_bucket" "data" {
  #checkov:skip=CKV_GCP_62:Data access is recorded by Cloud Audit Logs (data access logs), not a storage log bucket.
  #checkov:skip=CKV_GCP_78:Fetched Parquet is re-creatable from BigQuery and rewritten on redelivery by design; versions would only keep duplicates.
  name                        = "${var.project_id}-${local.prefix}${local.platform.buckets.data}"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  labels                      = var.labels

  lifecycle_rule {
    condition {
      age            = var.fetch_retention_days
      matches_prefix = ["fetch/", "training/", "_launched/"]
    }
    action {
      type = "Delete"
    }
  }
}

resource "google_storage_bucket" "artifacts" {
  #checkov:skip=CKV_GCP_62:Data access is recorded by Cloud Audit Logs (data access logs), not a storage log bucket.
  name                        = "${var.project_id}-${local.prefix}${local.platform.buckets.artifacts}"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  labels                      = var.labels
  versioning {
    enabled = true
  }

  # Old versions of models and reports: kept for rollback, not for ever.
  lifecycle_rule {
    condition {
      num_newer_versions = 10
      with_state         = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }
}
