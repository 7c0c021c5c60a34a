# Optional: group-membership changes, from the organisation's audit logs, go to rbac-sync so
# access usually follows a change within minutes. Every way a membership changes is audited:
# the Admin console and the Directory API under admin.googleapis.com (group events), group
# managers in Google Groups and the Cloud Identity Groups API under cloudidentity.googleapis.com
# (Enterprise Groups Audit; any write there asks for a reconcile, which is idempotent). Group
# audit logs can lag by tens of minutes: the 10-minute tick bounds the delay, not this sink.
# Creating an organisation sink needs roles/logging.configWriter on the organisation (README).

resource "google_logging_organization_sink" "group_changes" {
  count            = var.group_audit_sink.enabled ? 1 : 0
  name             = "${local.prefix}group-membership-changes"
  org_id           = var.group_audit_sink.organization_id
  destination      = "pubsub.googleapis.com/${google_pubsub_topic.topic["rbac-sync"].id}"
  include_children = true
  filter           = <<-EOT
    logName:"cloudaudit.googleapis.com%2Factivity" AND (
      (protoPayload.serviceName="admin.googleapis.com" AND
       protoPayload.metadata.event.eventName=("ADD_GROUP_MEMBER" OR "REMOVE_GROUP_MEMBER" OR "UPDATE_GROUP_MEMBER" OR "DELETE_GROUP"))
      OR protoPayload.serviceName="cloudidentity.googleapis.com"
    )
  EOT
}

resource "google_pubsub_topic_iam_member" "group_changes_publish" {
  count  = var.group_audit_sink.enabled ? 1 : 0
  topic  = google_pubsub_topic.topic["rbac-sync"].id
  role   = "roles/pubsub.publisher"
  member = google_logging_organization_sink.group_changes[0].writer_identity
}
