terraform {
  # The bucket is passed at init: terraform init -backend-config="bucket=..."
  backend "gcs" {
    prefix = "retail-platform"
  }
}
