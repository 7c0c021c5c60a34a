"""Offline checks that hold code and infrastructure together (no cloud, no terraform binary):
the contract between the code and Terraform, terraform fmt, checkov, hadolint; and proof that
the contract check fails, naming the thing, when either side drifts."""

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
    """A copy of the repository's code and infra to break."""
    for name in ("infra", "functions", "jobs", "shared"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_a_topic_deleted_from_terraform_is_named(drifted):
    pubsub = drifted / "infra/modules/platform/pubsub.tf"
    pubsub.write_text(pubsub.read_text().replace('    "fetch-chunk-done",\n', "", 1))
    problems = infra_checks.contract_problems(drifted / "infra", drifted)
    assert any("topics in the code but not in Terraform: fetch-chunk-done" in p for p in problems)


def test_a_function_without_its_terraform_is_named(drifted):
    main = drifted / "functions/main.py"
    main.write_text(
        main.read_text()
        + "\n\n@functions_framework.cloud_event\ndef forecast_demand(event):\n    pass\n"
    )
    problems = infra_checks.contract_problems(drifted / "infra", drifted)
    assert any("forecast_demand" in p and "not in Terraform" in p for p in problems), problems


def test_an_environment_variable_terraform_does_not_set_is_named(drifted):
    main = drifted / "functions/main.py"
    main.write_text(main.read_text() + '\n\nTIMEOUT = os.environ.get("RETAIL_NEW_KNOB")\n')
    problems = infra_checks.contract_problems(drifted / "infra", drifted)
    assert any("RETAIL_NEW_KNOB" in p for p in problems), problems


def test_a_cron_that_breaks_the_design_is_named(drifted):
    scheduler = drifted / "infra/modules/platform/scheduler.tf"
    scheduler.write_text(scheduler.read_text().replace('"0 23 * * 6"', '"0 23 * * 3"'))
    problems = infra_checks.contract_problems(drifted / "infra", drifted)
    assert any("train-promotions" in p and "0 23 * * 3" in p for p in problems), problems
    wednesday = [
        topology.Schedule(s.name, "0 23 * * 3" if s.name == "train-promotions" else s.cron,
                          s.topic, s.payload, s.why)
        for s in topology.SCHEDULES
    ]  # fmt: skip
    problems = infra_checks.schedule_problems({s.name: s for s in wednesday}, None)
    assert problems and "Saturday night" in problems[0]


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
    assert "shared.api.wsgi:app" in api and (REPO / "shared/api/wsgi.py").exists()


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
    assert steps["terraform-validate"]["dir"] == "infra/envs/${_ENV}"
    apply = steps["terraform-apply"]["args"][-1]
    assert '"${BRANCH_NAME}" = "main"' in apply and "terraform apply" in apply
    # Every environment the trigger can name exists.
    assert {p.name for p in (INFRA / "envs").iterdir()} == {"dev", "prod"}
