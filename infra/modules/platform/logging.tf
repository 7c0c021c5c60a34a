# Optional: Google Workspace group-membership changes, from the organisation's audit logs, go
# to rbac-sync so access follows a change within seconds; the 10-minute tick stays the fallback.
# Creating an organisation sink needs roles/logging.configWriter on the organisation (README).

resource "google_logging_organization_sink" "group_changes" {
  count            = var.group_audit_sink.enabled ? 1 : 0
  name             = "${local.prefix}group-membership-changes"
  org_id           = var.group_audit_sink.organization_id
  destination      = "pubsub.googleapis.com/${google_pubsub_topic.topic["rbac-sync"].id}"
  include_children = true
  filter           = <<-EOT
    protoPayload.serviceName="admin.googleapis.com"
    protoPayload.metadata.event.eventName=("ADD_GROUP_MEMBER" OR "REMOVE_GROUP_MEMBER" OR "UPDATE_GROUP_MEMBER" OR "DELETE_GROUP")
  EOT
}

resource "google_pubsub_topic_iam_member" "group_changes_publish" {
  count  = var.group_audit_sink.enabled ? 1 : 0
  topic  = google_pubsub_topic.topic["rbac-sync"].id
  role   = "roles/pubsub.publisher"
  member = google_logging_organization_sink.group_changes[0].writer_identity
}
