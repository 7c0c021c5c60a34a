terraform {
  required_version = ">= 1.9" # variable validations read the declaration file
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "6.50.0" # locked with checksums in .terraform.lock.hcl
    }
  }
  # The bucket is passed at init: terraform init -backend-config="bucket=<state bucket>"
  backend "gcs" {
    prefix = "retail-platform/prod"
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}
