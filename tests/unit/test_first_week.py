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


def test_functions_are_built_as_a_declared_identity_with_its_grants(module):
    """Defect 2: with no build service account, builds ran as the default compute account,
    which on projects created since mid-2024 cannot build."""
    from shared.platform import declaration

    function = module["resource"]["google_cloudfunctions2_function"]["function"]
    [build] = function["build_config"]
    assert build["service_account"] == "${google_service_account.build.id}"
    declared = declaration()["build_account"]
    assert set(declared["project"]) == {"roles/logging.logWriter", "roles/artifactregistry.writer"}
    assert declared["buckets"] == {"source": "roles/storage.objectViewer"}
    grants = module["resource"]["google_project_iam_member"]["build"]
    assert grants["for_each"] == "${toset(local.platform.build_account.project)}"
    # Built only once the identity may build.
    assert "${google_project_iam_member.build}" in function["depends_on"]


def test_data_and_compute_share_one_declared_location(tmp_path):
    """Defect 10: datasets in US, functions and buckets in europe-west1: every read stream
    crossed the Atlantic. One region per environment, declared; Terraform places everything
    by it; a drifted copy that puts the datasets elsewhere is named."""
    import shutil
    from pathlib import Path

    from local import infra_checks
    from shared.platform import environments, facts

    for env in environments():
        values = facts(env, "p-1")
        assert values["bigquery_location"] == values["region"]
    assert infra_checks.contract_problems() == []

    repo = Path(__file__).parents[2]
    drifted = tmp_path / "repo"
    shutil.copytree(repo / "infra", drifted / "infra", ignore=shutil.ignore_patterns(".terraform"))
    shutil.copytree(
        repo / "shared", drifted / "shared", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(repo / "functions", drifted / "functions")
    shutil.copytree(repo / "jobs", drifted / "jobs")
    bq = drifted / "infra/modules/platform/bigquery.tf"
    bq.write_text(bq.read_text().replace("location    = var.region", 'location    = "US"', 1))
    main = drifted / "infra/deploy/main.tf"
    main.write_text(main.read_text().replace("../modules/platform", "../../modules/platform"))
    problems = "\n".join(infra_checks.contract_problems(drifted / "infra", drifted))
    assert "location 'US' is not the declared region" in problems
    assert "../../modules/platform does not exist" in problems


def test_no_two_environments_create_one_dataset(tmp_path):
    """Defect 6: both environments created the source dataset `retail`; in one project,
    prod's first apply failed with Already Exists, or two states owned one dataset."""
    import shutil
    from pathlib import Path

    from local import infra_checks
    from shared.platform import Names, environments

    created = [Names(env, "p").dataset("source") for env in environments()]
    assert len(set(created)) == len(created)
    assert infra_checks.value_problems()[0] == []
    drifted = tmp_path / "repo"
    shutil.copytree(Path(__file__).parents[2] / "shared", drifted / "shared")
    decl = drifted / "shared/platform.yaml"
    decl.write_text(
        decl.read_text().replace("source_dataset: dev_retail", "source_dataset: retail")
    )
    problems = infra_checks.value_problems(drifted)[0]
    assert any("both create dataset retail" in p for p in problems), problems
