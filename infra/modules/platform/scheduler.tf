# Cloud Scheduler: the jobs, crons and messages of shared/platform.yaml, in the environment's
# time zone ("{table}" in a body is the source transactions table).

resource "google_cloud_scheduler_job" "schedule" {
  for_each  = toset(keys(local.platform.schedules))
  name      = "${local.prefix}${each.key}"
  region    = var.region
  schedule  = local.platform.schedules[each.key].cron
  time_zone = local.settings.schedule_time_zone

  retry_config {
    retry_count = 3
  }

  pubsub_target {
    topic_name = google_pubsub_topic.topic[local.platform.schedules[each.key].topic].id
    data = base64encode(replace(
      jsonencode(local.platform.schedules[each.key].body),
      "{table}",
      "${var.project_id}.${local.source_dataset}.transactions",
    ))
  }
}
