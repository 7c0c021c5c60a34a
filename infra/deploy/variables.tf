variable "environment" {
  description = "Environment of shared/platform.yaml this deployment stands for (env/<name>.tfvars)."
  type        = string
  validation {
    condition     = contains(keys(yamldecode(file("${path.module}/../../shared/platform.yaml")).environments), var.environment)
    error_message = "The environment must be one declared in shared/platform.yaml."
  }
}

variable "project_id" {
  description = "Google Cloud project of this environment."
  type        = string
}

variable "image_tag" {
  description = "Tag of the training and API images to deploy (Cloud Build passes the commit)."
  type        = string
}

variable "rbac_config_uri" {
  description = "gs:// URI of the RBAC reconciler's YAML config."
  type        = string
}

variable "rbac_secret_env_name" {
  description = "Environment variable the RBAC config names for the Airflow secret; empty on Composer (Google identity)."
  type        = string
  default     = ""
}

variable "api_invokers" {
  description = "Principals allowed to call the API, e.g. [\"group:pricing-analysts@example.com\"]."
  type        = list(string)
  default     = []
}

variable "desk_access_uri" {
  description = "gs:// URI of the desk's access mapping (Google Groups -> categories, stores, analysts, readers); empty: no desk."
  type        = string
  default     = ""
}

variable "desk_members" {
  description = "Principals IAP lets through to the desk, e.g. [\"group:desk-users@example.com\"]; each person's grant is the desk's own."
  type        = list(string)
  default     = []
}

variable "organization_id" {
  description = "Organisation whose Workspace group-membership audit events trigger the RBAC reconcile; empty to rely on the 10-minute tick."
  type        = string
  default     = ""
}

variable "function_source_object" {
  description = "Object in the function-source bucket with the zipped functions (Cloud Build uploads it per commit)."
  type        = string
  default     = "functions-source.zip"
}
