"""The deployment's first week, read from the Terraform as the cloud would take it (issue 23).
Each test fails on the Terraform of 8ad2db8."""

import pytest

from local.infra_checks import load_module


@pytest.fixture(scope="module")
def module():
    return load_module()


def test_push_subscriptions_state_the_audience_the_function_accepts(module):
    """Defect 9: with no audience, Pub/Sub signs the token for the push endpoint, path and
    all; the audience is stated and is the function's own URL."""
    push = module["resource"]["google_pubsub_subscription"]["push"]
    [token] = push["push_config"][0]["oidc_token"]
    function_uri = "google_cloudfunctions2_function.function[local.subscriptions[each.key]"
    assert token["audience"].startswith(f"${{{function_uri}")
    assert token["audience"].endswith(".service_config[0].uri}")


def test_a_function_is_created_after_the_grants_on_the_secrets_it_references(module):
    """Defect 7: sync_rbac's environment references the Airflow secret; the deploy checks the
    runtime account can read it, so the grant must exist first."""
    function = module["resource"]["google_cloudfunctions2_function"]["function"]
    assert "${google_secret_manager_secret_iam_member.grant}" in function["depends_on"]


def test_the_group_sink_hears_every_way_a_membership_changes(module):
    """Defect 5: memberships changed by group managers or through the Cloud Identity API
    are audited by cloudidentity.googleapis.com, not only the Admin console's events."""
    sink = module["resource"]["google_logging_organization_sink"]["group_changes"]
    text = sink["filter"]
    assert 'protoPayload.serviceName="admin.googleapis.com"' in text
    assert 'protoPayload.serviceName="cloudidentity.googleapis.com"' in text
    assert "cloudaudit.googleapis.com%2Factivity" in text  # changes, not reads
    source = (module_dir() / "logging.tf").read_text()
    assert "within seconds" not in source and "tens of minutes" in source


def module_dir():
    from local.infra_checks.common import INFRA, MODULE

    return INFRA / MODULE
