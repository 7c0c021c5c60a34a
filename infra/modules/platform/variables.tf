variable "project_id" {
  description = "Google Cloud project that hosts the platform."
  type        = string
}

variable "environment" {
  description = "Which environment of shared/platform.yaml this is (dev, prod): its prefix, limits and shapes."
  type        = string
  validation {
    condition     = contains(keys(yamldecode(file("${path.module}/../../../shared/platform.yaml")).environments), var.environment)
    error_message = "environment must be one declared in shared/platform.yaml."
  }
}

variable "region" {
  description = "Region of the functions, jobs, service and buckets."
  type        = string
  default     = "europe-west1"
}

variable "labels" {
  description = "Labels put on every resource that takes them."
  type        = map(string)
  default     = {}
}

variable "function_source_object" {
  description = "Object in the source bucket holding the zipped functions/ + shared/ tree (set by Cloud Build)."
  type        = string
  default     = "functions-source.zip"
}

variable "fetch_retention_days" {
  description = "Days fetched Parquet and training intermediates are kept in the data bucket."
  type        = number
  default     = 30
}

variable "images" {
  description = "Container images (Artifact Registry, tagged by Cloud Build) of the training jobs and the API."
  type = object({
    training = string
    api      = string
  })
}

variable "api_invokers" {
  description = "Principals allowed to call the prediction API (Cloud Run IAM), e.g. group:pricing-analysts@example.com."
  type        = list(string)
  default     = []
}

variable "rbac" {
  description = "Access control reconciler: where its YAML config lives and the environment variable the config names for the Airflow secret (empty when it uses a Google identity on Composer)."
  type = object({
    config_uri      = string
    secret_env_name = optional(string, "")
  })
  validation {
    condition     = startswith(var.rbac.config_uri, "gs://")
    error_message = "rbac.config_uri must be a gs:// URI."
  }
}

variable "group_audit_sink" {
  description = "Route Google Workspace group-membership audit events to the rbac-sync topic (organisation-level sink). Needs the organisation's Workspace audit logs shared with Cloud Logging."
  type = object({
    enabled         = optional(bool, false)
    organization_id = optional(string, "")
  })
  default = {}
  validation {
    condition     = !var.group_audit_sink.enabled || can(regex("^[0-9]+$", var.group_audit_sink.organization_id))
    error_message = "group_audit_sink.organization_id (numeric) is required when the sink is enabled."
  }
}

variable "desk" {
  description = "The desk (browser pages for category managers, store managers and analysts) behind IAP: access_uri, the gs:// YAML mapping Google Groups to categories, stores, analysts and readers (empty: no desk); members, the principals IAP lets through (e.g. group:desk-users@example.com)."
  type = object({
    access_uri = optional(string, "")
    members    = optional(list(string), [])
  })
  default = {}
  validation {
    condition     = var.desk.access_uri == "" || startswith(var.desk.access_uri, "gs://")
    error_message = "desk.access_uri must be a gs:// URI (or empty: no desk)."
  }
}
