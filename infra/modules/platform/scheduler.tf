# Cloud Scheduler: the same jobs, crons and messages as SCHEDULES in shared/topology.py (a test
# holds the two together and both to DESIGN.md).

locals {
  schedules = {
    "train-pricing" = {
      cron  = "0 2 1 * *"
      topic = "training-schedule"
      body  = { job = "pricing", table = local.transactions_table }
    }
    "train-promotions" = {
      cron  = "0 23 * * 6"
      topic = "training-schedule"
      body  = { job = "promotions", table = local.transactions_table }
    }
    "rbac-reconcile" = {
      cron  = "*/10 * * * *"
      topic = "rbac-sync"
      body  = { reason = "tick" }
    }
  }
}

resource "google_cloud_scheduler_job" "schedule" {
  for_each  = local.schedules
  name      = "${var.prefix}${each.key}"
  region    = var.region
  schedule  = each.value.cron
  time_zone = var.schedule_time_zone

  retry_config {
    retry_count = 3
  }

  pubsub_target {
    topic_name = google_pubsub_topic.topic[each.value.topic].id
    data       = base64encode(jsonencode(each.value.body))
  }
}
