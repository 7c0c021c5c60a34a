terraform {
  required_version = ">= 1.9" # variable validations read the declaration file
  required_providers {
    google = {
      source = "hashicorp/google"
      # The version the offline schema checks read (infra/provider-schema.json); the lock file
      # beside each environment pins its checksums.
      version = "6.50.0"
    }
  }
}
