terraform {
  required_version = ">= 1.9" # variable validations read the declaration file
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "6.50.0" # locked with checksums in .terraform.lock.hcl
    }
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "6.50.0" # the desk's Cloud Run service (IAP on the service is a preview)
    }
  }
  # Bucket and prefix are passed at init, one state per environment:
  # terraform init -backend-config="bucket=<state bucket>" -backend-config="prefix=retail-platform/<env>"
  backend "gcs" {}
}

provider "google" {
  project = var.project_id
  region  = local.region
}

provider "google-beta" {
  project = var.project_id
  region  = local.region
}
