variable "project_id" {
  description = "Google Cloud project that hosts the platform."
  type        = string
}

variable "region" {
  description = "Region of the functions, jobs, service and buckets."
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

variable "fetch_limits" {
  description = "Caps that keep the fetch fan-out inside GCP quotas: Storage Read streams per session, function instances (each holds one stream), and the work budget of one invocation."
  type = object({
    max_streams   = optional(number, 16)
    max_instances = optional(number, 20)
    time_budget_s = optional(number, 480)
  })
  default = {}
  validation {
    condition     = var.fetch_limits.time_budget_s < 540
    error_message = "time_budget_s must leave a margin under the 540 s function timeout."
  }
}

variable "bigquery_location" {
  description = "Location of the platform's BigQuery datasets (the source tables' location)."
  type        = string
  default     = "US"
}

variable "source_dataset" {
  description = "Dataset holding the retailer's tables (transactions, promotions, products, stores)."
  type        = string
  default     = "retail"
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

variable "training" {
  description = "Cloud Run job shape per training job: tasks shard the products, each task uses a process pool over its CPUs."
  type = map(object({
    task_count  = number
    parallelism = number
    max_retries = number
    timeout_s   = number
    cpu         = string
    memory      = string
  }))
  default = {
    pricing    = { task_count = 4, parallelism = 4, max_retries = 3, timeout_s = 3600, cpu = "2", memory = "4Gi" }
    promotions = { task_count = 1, parallelism = 1, max_retries = 3, timeout_s = 3600, cpu = "2", memory = "8Gi" }
  }
}

variable "api" {
  description = "The prediction API service: scaling, and who may call it (Cloud Run IAM)."
  type = object({
    min_instances = optional(number, 0)
    max_instances = optional(number, 10)
    invokers      = optional(list(string), [])
  })
  default = {}
}

variable "schedule_time_zone" {
  description = "Time zone of the Scheduler crons (Saturday night is the retailer's)."
  type        = string
  default     = "Etc/UTC"
}

variable "rbac" {
  description = "Access control reconciler: where its YAML config lives and the environment variable the config names for the Airflow secret (empty when it uses a Google identity on Composer)."
  type = object({
    config_uri      = string
    secret_env_name = optional(string, "")
  })
}

variable "group_audit_sink" {
  description = "Route Google Workspace group-membership audit events to the rbac-sync topic (organisation-level sink). Needs the organisation's Workspace audit logs shared with Cloud Logging."
  type = object({
    enabled         = optional(bool, false)
    organization_id = optional(string, "")
  })
  default = {}
  validation {
    condition     = !var.group_audit_sink.enabled || var.group_audit_sink.organization_id != ""
    error_message = "group_audit_sink.organization_id is required when the sink is enabled."
  }
}
