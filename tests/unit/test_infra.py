"""Offline checks that hold code and infrastructure together (no cloud, no terraform binary):
the contract between the code and Terraform, terraform fmt, checkov, hadolint; and proof that
the contract check fails, naming the thing, when either side drifts."""

import re
import shutil
from pathlib import Path

import pytest

from local import infra_checks
from shared import topology

REPO = Path(__file__).parents[2]
INFRA = REPO / "infra"


def test_code_and_terraform_agree():
    assert infra_checks.contract_problems() == []


@pytest.fixture
def drifted(tmp_path):
    """A copy of the repository's code, declaration and infra to break."""
    for name in ("infra", "functions", "jobs", "shared"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_a_hand_written_topic_list_in_terraform_is_named(drifted):
    pubsub = drifted / "infra/modules/platform/pubsub.tf"
    pubsub.write_text(
        pubsub.read_text().replace("toset(local.platform.topics)", 'toset(["fetch-requests"])', 1)
    )
    problems = infra_checks.contract_problems(drifted / "infra", drifted)
    assert any("google_pubsub_topic.topic is not built from the declaration" in p for p in problems)


def test_a_function_without_its_declaration_is_named(drifted):
    main = drifted / "functions/main.py"
    main.write_text(
        main.read_text()
        + "\n\n@entry_point(TrainingTick)\ndef forecast_demand(tick, _d, _s):\n    pass\n"
    )
    problems = infra_checks.contract_problems(drifted / "infra", drifted)
    assert any("forecast_demand" in p and "functions/main.py" in p for p in problems), problems


def test_an_environment_variable_not_declared_is_named(drifted):
    settings = drifted / "shared/settings.py"
    text = settings.read_text()
    assert "            rbac_config=env.get(" in text
    settings.write_text(
        text.replace(
            "            rbac_config=env.get(",
            '            new_knob=env.get("RETAIL_NEW_KNOB"),\n            rbac_config=env.get(',
        )
    )
    main = drifted / "functions/main.py"
    main.write_text(main.read_text() + "\n\ndef _knob(settings):\n    return settings.new_knob\n")
    problems = infra_checks.contract_problems(drifted / "infra", drifted)
    assert any("RETAIL_NEW_KNOB" in p and "not declared" in p for p in problems), problems


def test_only_settings_reads_the_environment():
    """The platform's code (functions, jobs, shared) reads variables only through Settings."""
    repo = Path(__file__).parents[2]
    readers = [
        f"{path.relative_to(repo)}:{n}"
        for folder in ("shared", "functions", "jobs")
        for path in sorted((repo / folder).rglob("*.py"))
        if path != repo / "shared" / "settings.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if "os.environ" in line or "os.getenv" in line
    ]
    assert readers == []


def test_a_role_granted_outside_the_declaration_is_named(drifted):
    iam = drifted / "infra/modules/platform/iam.tf"
    iam.write_text(
        iam.read_text()
        + '\nresource "google_project_iam_member" "extra" {\n  project = var.project_id\n'
        '  role    = "roles/editor"\n'
        '  member  = "serviceAccount:${google_service_account.deployable["api"].email}"\n}\n'
    )
    problems = infra_checks.contract_problems(drifted / "infra", drifted)
    assert any("google_project_iam_member.extra" in p for p in problems), problems


def test_a_subscription_that_can_expire_is_named(drifted):
    """Defect 5: Pub/Sub deletes a subscription idle for 31 days unless expiration is off."""
    pubsub = drifted / "infra/modules/platform/pubsub.tf"
    text = pubsub.read_text()
    pubsub.write_text(text.replace('  expiration_policy {\n    ttl = ""\n  }\n', "", 1))
    problems = infra_checks.contract_problems(drifted / "infra", drifted)
    assert any("dead_letter_inspect" in p and "expir" in p for p in problems), problems


def test_the_api_start_up_probe_must_not_wait_for_a_model(drifted):
    """Defect 4: a start-up probe on /readyz never passes on a fresh project (no model)."""
    run = drifted / "infra/modules/platform/run.tf"
    text = run.read_text()
    run.write_text(text.replace('path = "/healthz"', 'path = "/readyz"', 1))
    problems = infra_checks.contract_problems(drifted / "infra", drifted)
    assert any("startup_probe" in p and "/healthz" in p for p in problems), problems


def test_the_desk_must_stay_behind_iap_with_every_variable_it_reads(drifted):
    """The desk trusts IAP's signed header: a desk service without IAP, or without a variable
    Settings reads for it, is named."""
    desk = drifted / "infra/modules/platform/desk.tf"
    desk.write_text(
        desk.read_text().replace("iap_enabled         = true", "iap_enabled         = false")
    )
    decl = drifted / "shared/platform.yaml"
    decl.write_text(decl.read_text().replace("    RETAIL_DESK_ONLY: desk_only\n", ""))
    problems = infra_checks.contract_problems(drifted / "infra", drifted)
    assert any("desk must set iap_enabled = true" in p for p in problems), problems
    assert any("desk's variables" in p and "RETAIL_DESK_ONLY" in p for p in problems), problems


def test_a_cron_that_breaks_the_design_is_named(drifted):
    decl = drifted / "shared/platform.yaml"
    decl.write_text(decl.read_text().replace('"0 23 * * 6"', '"0 23 * * 3"'))
    problems = infra_checks.contract_problems(drifted / "infra", drifted)
    assert any("Saturday night" in p and "0 23 * * 3" in p for p in problems), problems
    wednesday = [
        topology.Schedule(s.name, "0 23 * * 3" if s.name == "train-promotions" else s.cron,
                          s.topic, s.payload, s.why)
        for s in topology.SCHEDULES
    ]  # fmt: skip
    problems = infra_checks.schedule_problems({s.name: s for s in wednesday}, None)
    assert problems and "Saturday night" in problems[0]


# --------------------------------------------------------------------------- provider schema


def test_every_block_matches_the_provider_schema():
    problems, counts = infra_checks.schema_problems()
    assert problems == []
    assert counts["resources"] >= 25 and counts["arguments"] >= 150


def test_schema_check_names_an_unknown_argument_a_missing_one_and_a_bad_enum(drifted):
    run = drifted / "infra/modules/platform/run.tf"
    run.write_text(
        run.read_text()
        .replace('ingress = "INGRESS_TRAFFIC_ALL"', 'ingress = "ALL_TRAFFIC"', 1)
        .replace("  deletion_protection = false\n\n  template {\n    task_count",
                 "  deletion_protection = false\n  retries = 2\n\n  template {\n    task_count")
    )  # fmt: skip
    fn = drifted / "infra/modules/platform/functions.tf"
    fn.write_text(fn.read_text().replace("  location = var.region\n", "", 1))
    problems, _ = infra_checks.schema_problems(drifted / "infra")
    text = "\n".join(problems)
    assert "google_cloud_run_v2_service.api: ingress = 'ALL_TRAFFIC' is not one of" in text
    assert "google_cloud_run_v2_job.training: argument 'retries' is not in the" in text
    assert "google_cloudfunctions2_function.function: required argument 'location'" in text


def test_the_provider_is_pinned_to_the_checked_schema_and_locked(drifted):
    """Defect 7: '>= 6.0, < 8.0' and no lock file install whatever is newest."""
    versions = drifted / "infra/deploy/versions.tf"
    versions.write_text(versions.read_text().replace('"6.50.0"', '">= 6.0, < 8.0"', 1))
    (drifted / "infra/deploy/.terraform.lock.hcl").unlink()
    problems, _ = infra_checks.schema_problems(drifted / "infra")
    assert any("deploy/versions.tf" in p and "pin it exactly" in p for p in problems)
    assert any("deploy: no .terraform.lock.hcl locking hashicorp/google 6" in p for p in problems)
    assert any("locking hashicorp/google-beta" in p for p in problems)


def test_every_environment_value_keeps_the_provider_rules():
    problems, counts = infra_checks.value_problems()
    assert problems == []
    assert counts["values"] > 100


def test_a_service_account_id_too_short_for_prod_is_named(drifted):
    """Defect 1: the API's account id was "<prefix>api", i.e. "api" (3 characters) in prod."""
    decl = drifted / "shared/platform.yaml"
    decl.write_text(decl.read_text().replace("account: api-server", "account: api", 1))
    problems, _ = infra_checks.value_problems(drifted)
    assert any(p.startswith("prod: service account id 'api'") for p in problems), problems
    assert not any(p.startswith("dev: service account id 'dev-api'") for p in problems)


def test_value_rules_catch_durations_crons_and_time_zones(drifted):
    decl = drifted / "shared/platform.yaml"
    decl.write_text(
        decl.read_text()
        .replace("retention: 604800s\n\n# Push", "retention: 900000s\n\n# Push", 1)
        .replace('cron: "*/10 * * * *"', 'cron: "*/10 * * *"', 1)
        .replace("schedule_time_zone: Europe/Amsterdam", "schedule_time_zone: Europe/Amsterdm", 1)
        .replace("time_budget_s: 480}\n    part_max", "time_budget_s: 600}\n    part_max", 1)
    )  # fmt: skip
    problems = "\n".join(infra_checks.value_problems(drifted)[0])
    assert "dead-letter retention (s) = 900000" in problems
    assert "rbac-reconcile: '*/10 * * *' does not have 5 fields" in problems
    assert "'Europe/Amsterdm' is not a time zone" in problems
    assert "dev: fetch time_budget_s = 600" in problems


def test_cron_parser_accepts_scheduler_crons_and_refuses_nonsense():
    for good in ("0 2 1 * *", "0 23 * * 6", "*/10 * * * *", "0 0 * jan-mar mon,fri"):
        assert infra_checks.cron_problem(good) is None, good
    for bad in ("61 * * * *", "* 24 * * *", "* * * * 8", "*/0 * * * *", "0 0 1 13 *"):
        assert infra_checks.cron_problem(bad), bad


def test_terraform_is_formatted_and_parses():
    assert infra_checks.terraform_fmt(INFRA) == []


def test_terraform_fmt_reports_a_syntax_error(tmp_path):
    (tmp_path / "main.tf").write_text('resource "a" "b" {\n  x = \n}\n')
    assert infra_checks.terraform_fmt(tmp_path) != []


def test_checkov_has_no_unjustified_failures():
    found = infra_checks.checkov(INFRA, say=lambda _m: None)
    assert found["failed"] == []
    assert found["passed"] > 20
    assert all(reason for *_, reason in found["skipped"])  # every skip says why


def test_dockerfiles_are_hadolint_clean_and_run_real_entry_points():
    assert infra_checks.hadolint() == []
    training = (REPO / "docker/training.Dockerfile").read_text()
    api = (REPO / "docker/api.Dockerfile").read_text()
    assert "USER 10001" in training and "USER 10001" in api  # non-root
    assert (REPO / "jobs/pricing.py").exists() and "jobs.pricing" in training
    assert "shared.api.serve" in api and (REPO / "shared/api/serve.py").exists()
    assert "shared.api.wsgi:app" in (REPO / "shared/api/serve.py").read_text()


def test_function_requirements_match_pyproject():
    """The deployed functions install the same ranges the project is tested with."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = (REPO / "functions" / "requirements.txt").read_text().splitlines()
    deployed = [line for line in lines if line and not line.startswith("#")]
    assert sorted(deployed) == sorted(d for d in project if not d.startswith("tqdm"))


def test_cloud_build_runs_every_stage_with_pinned_builders_and_applies_only_on_main():
    import yaml

    build = yaml.safe_load((REPO / "cloudbuild.yaml").read_text())
    steps = {step["id"]: step for step in build["steps"]}
    assert list(steps) == [
        "lint",
        "test",
        "package-functions",
        "build-training",
        "build-api",
        "push-images",
        "upload-function-source",
        "terraform-fmt",
        "terraform-validate",
        "terraform-plan",
        "terraform-apply",
    ]
    for step in steps.values():
        image = step["name"]
        assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), image
    assert "mypy" in steps["lint"]["args"][-1]
    assert steps["terraform-validate"]["dir"] == "infra/deploy"
    assert "prefix=retail-platform/${_ENV}" in steps["terraform-validate"]["args"][-1]
    assert '-var-file="env/${_ENV}.tfvars"' in steps["terraform-plan"]["args"][-1]
    apply = steps["terraform-apply"]["args"][-1]
    assert '"${BRANCH_NAME}" = "main"' in apply and "terraform apply" in apply
    # Every environment the trigger can name exists.
    assert {p.stem for p in (INFRA / "deploy" / "env").glob("*.tfvars")} == {"dev", "prod"}


def test_cloud_build_passes_every_variable_an_environment_takes():
    """Defect 6: organization_id, api_invokers and rbac_secret_env_name could not be set."""
    import yaml

    build = yaml.safe_load((REPO / "cloudbuild.yaml").read_text())
    plan = next(s for s in build["steps"] if s["id"] == "terraform-plan")["args"][-1]
    passed = set(re.findall(r"-var[= ][\"']?([a-z_]+)=", plan))
    declared = set(re.findall(r'^variable "([a-z_]+)"', (INFRA / "deploy" /
                              "variables.tf").read_text(), re.M))  # fmt: skip
    assert declared - passed == {"environment"}  # from env/<env>.tfvars
    for name in ("_ORGANIZATION_ID", "_API_INVOKERS", "_RBAC_SECRET_ENV_NAME", "_DESK_ACCESS_URI",
                 "_DESK_MEMBERS"):  # fmt: skip
        assert name in build["substitutions"]


def test_package_of_the_functions_carries_the_declaration():
    """The deployed functions read shared/platform.yaml at import: it must be in the zip."""
    import yaml

    build = yaml.safe_load((REPO / "cloudbuild.yaml").read_text())
    package = next(s for s in build["steps"] if s["id"] == "package-functions")["args"][-1]
    assert "platform.yaml" in package or '"*.yaml"' in package


def test_the_deployment_guide_lists_the_roles_the_resources_need():
    """Defect 6: Editor + Project IAM Admin + Secret Manager Admin cannot set the resource-level
    grants (topics, subscriptions, buckets, services, jobs), nor the organisation sink."""
    from local.deployer_roles import BUILD, deployer_roles

    roles = deployer_roles()
    readme = " ".join((REPO / "README.md").read_text().split())
    guide = readme[readme.index("The deploying identity") : readme.index("State bucket")]
    listed = set(re.findall(r"`(roles/[a-zA-Z.]+)`", guide))
    assert listed == set(roles["project"]) | set(roles["organization"]) | set(BUILD)
    assert roles["organization"] == ["roles/logging.configWriter"]
    # The old guide's roles would not do: e.g. no right to set a topic's IAM policy.
    assert {"roles/pubsub.admin", "roles/run.admin", "roles/storage.admin"} <= set(roles["project"])


def test_the_bootstrap_creates_what_the_first_build_reads_and_the_guide_says_so():
    """Defect 4: the bootstrap did not create the key secret the guide then asked to fill."""
    from local.deployer_roles import BOOTSTRAP, bootstrap_command

    module = infra_checks.load_module()
    for address, _why in BOOTSTRAP:
        kind, rest = address.split(".", 1)
        name = rest.split("[", 1)[0]
        assert name in module["resource"].get(kind, {}), address
    assert 'secret["artifact_keys"]' in bootstrap_command()
    readme = (REPO / "README.md").read_text()
    assert bootstrap_command("dev").split(" -var ")[0] in readme
    build = (REPO / "cloudbuild.yaml").read_text()
    # What Cloud Build reads before it applies is what the bootstrap made.
    assert "${_PREFIX}retail" in build and "${PROJECT_ID}-${_PREFIX}function-source" in build
