"""The README's main command, end to end at a small size, on a stack of its own: every step's
observable outcome (data loaded, exact fetch, both trainings, API answers, access following
the groups, the report) asserted from the run's own record."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from local.stack import REPO

pytestmark = pytest.mark.stack

PORTS = {
    "RETAIL_PUBSUB_PORT": "26085",
    "RETAIL_BQ_REST_PORT": "26050",
    "RETAIL_BQ_GRPC_PORT": "26060",
    "RETAIL_BQ_READ_PORT": "26061",
    "RETAIL_GCS_PORT": "26443",
    "RETAIL_FUNCTIONS_BASE_PORT": "26101",
    "RETAIL_CLOUD_IDENTITY_PORT": "26095",
    "RETAIL_CLOUD_RUN_PORT": "26096",
    "RETAIL_API_PORT": "26097",
    "RETAIL_SECRET_MANAGER_PORT": "26098",
}


def test_main_command_at_a_small_size(tmp_path):
    record = tmp_path / "main.json"
    # Nothing of another stack (the test session's) leaks in: this run builds its own.
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("RETAIL_", "AIRFLOW")) and not k.endswith("_EMULATOR_HOST")
        },
        **PORTS,
        "RETAIL_STACK_DIR": str(tmp_path / "stack"),
        "RETAIL_ENV": "dev",  # the names, prefix and variables of infra/deploy with env/dev.tfvars
    }
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "local.demo",
            "--rows",
            "150000",
            "--airflow-port",
            "18290",
            "--airflow-home",
            str(tmp_path / "airflow"),
            "--json",
            str(record),
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    seen = json.loads(record.read_text())
    assert seen["ok"] is True

    loaded = seen["data"]["rows"]["transactions"]
    assert loaded > 100_000
    fetched = seen["fetch"]
    assert fetched["rows"] == loaded and fetched["parts"] >= 1  # exact, through Pub/Sub
    # A fan-out wider than the fetch instances (dev: 8), on the stack that answers 429:
    # nothing lost to the dead-letter topic.
    assert fetched["deliveries"]["fetch_chunk"]["delivered"] > 8
    assert fetched["dead_letters"] == 0

    trained = seen["training"]
    assert set(trained["executions"]) == {"pricing", "promotions"}
    assert trained["executions"]["pricing"]["tasks"] == 2  # parallel Cloud Run tasks
    # One execution of each job for the run, counted through the Cloud Run Admin API.
    assert {j: e["executions"] for j, e in trained["executions"].items()} == {
        "pricing": 1,
        "promotions": 1,
    }
    assert sum(trained["pricing_rows"].values()) == seen["data"]["rows"]["products"]
    scores = trained["promotion_scores"]
    assert scores["model_wape"] < scores["naive_wape"]
    run_id = fetched["run_id"]
    # The dev deployment's names: prefixed buckets, topics and jobs.
    assert fetched["destination"].startswith("gs://retail-local-dev-data/")
    assert f"gs://retail-local-dev-artifacts/pricing/{run_id}.model" in trained["artifacts"]
    assert f"gs://retail-local-dev-artifacts/promotions/{run_id}.model" in trained["artifacts"]

    api = seen["api"]
    assert api["products_priced"] == seen["data"]["rows"]["products"]
    assert all(p["model_run_id"] == run_id for p in api["prices"])
    prediction = api["prediction"]
    assert prediction["model_run_id"] == run_id and prediction["uplift"] > 1
    assert all(p["product_id"] == api["plan"]["product_id"] for p in api["past_promotions"])

    access = seen["access"]
    pricing = {"pricing_daily", "pricing_weekly", "elasticity_report"}
    promo = {"promo_uplift", "promo_calendar"}
    assert set(access["before"]["paul@retail.example"]) == pricing
    assert set(access["before"]["priya@retail.example"]) == pricing  # via a nested group
    assert set(access["after"]) == promo  # moved groups: access followed
    assert access["second_changes"] >= 1

    # Every Google API call of every deployable was allowed by its Terraform grants.
    iam = seen["iam"]
    assert iam["missing"] == []
    assert set(iam["deployables"]) == {
        "plan_fetch", "fetch_chunk", "finalize_fetch", "launch_training", "sync_rbac",
        "pricing", "promotions", "api",
    }  # fmt: skip
    assert iam["checks"] > 50

    report = Path(seen["report"]).read_text()
    assert "<svg" in report and "Promotion model accuracy" in report

    # The summary a newcomer reads.
    assert "main job succeeded" in run.stdout and "== summary" in run.stdout
