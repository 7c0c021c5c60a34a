terraform {
  required_version = ">= 1.9" # variable validations read the declaration file
  required_providers {
    google = {
      source = "hashicorp/google"
      # The version the offline schema checks read (infra/provider-schema.json); the lock file
      # beside each environment pins its checksums.
      version = "6.50.0"
    }
    # The desk's Cloud Run service only: iap_enabled is a preview argument (desk.tf).
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "6.50.0"
    }
  }
}
