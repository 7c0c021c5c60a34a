variable "project_id" {
  description = "Google Cloud project that hosts the platform."
  type        = string
}

variable "region" {
  description = "Region of the functions, jobs and buckets."
  type        = string
  default     = "europe-west1"
}

variable "prefix" {
  description = "Optional prefix for resource names (no random suffixes)."
  type        = string
  default     = ""
  validation {
    condition     = can(regex("^([a-z][a-z0-9-]{0,14}-)?$", var.prefix))
    error_message = "prefix is empty or lower case letters, digits and hyphens ending in '-'."
  }
}

variable "function_source_object" {
  description = "Object in the source bucket holding the zipped functions/ + shared/ tree (set by Cloud Build)."
  type        = string
  default     = "functions-source.zip"
}

variable "fetch_limits" {
  description = "Caps that keep the fetch fan-out inside GCP quotas."
  type = object({
    max_streams      = optional(number, 16)
    max_instances    = optional(number, 20)
    time_budget_s    = optional(number, 480)
  })
  default = {}
}

variable "bigquery_location" {
  description = "Location of the platform's BigQuery datasets (the source tables' location)."
  type        = string
  default     = "US"
}
