"""Training starts from fetch-complete: launch_training calls the Cloud Run API (the local
runner behind the official client), the pricing tasks run in parallel and write results."""

import json
import uuid

import pytest

from shared import clients, topology
from shared.fetch.layout import RunLayout
from shared.messages import FetchRequest
from shared.platform import environment
from shared.training.launch import Launcher, launch

from ..integration.helpers import wait_for
from ..integration.test_fetch_pipeline import publish_request

pytestmark = pytest.mark.stack


def execution(stack, run_id, job="pricing"):
    for path in (stack.state_dir / "cloud-run" / "executions").glob(
        f"{stack.names.job(job)}-*.json"
    ):
        record = json.loads(path.read_text())
        if record["run_id"] == run_id and record.get("done"):
            return record
    return None


def test_a_fetch_asking_for_training_ends_in_pricing_results(stack, settings, retail):
    request = publish_request(settings, parallelism=3, train=["pricing"])
    run_id = request.run_id
    record = wait_for(lambda: execution(stack, run_id), timeout_s=240)
    assert record is not None, "no pricing execution finished"
    assert record["succeeded"] and [t["index"] for t in record["tasks"]] == [0, 1]
    bq = clients.bigquery_client(settings)
    table = f"{settings.project}.{settings.results_dataset}.pricing"
    sql = f"SELECT COUNT(*) AS n FROM `{table}` WHERE run_id = '{run_id}'"
    assert next(iter(bq.query(sql).result()))["n"] == retail["rows"]["products"]

    # fetch-complete delivered again: no second execution
    manifest = f"{request.destination}/_manifest.json"
    again = launch("pricing", run_id, manifest, Launcher.of(settings))
    assert again is None


def test_a_failing_task_is_retried_then_the_execution_fails(stack, settings):
    run_id = f"bad-{uuid.uuid4().hex[:6]}"
    nothing = str(RunLayout.of(settings.fetch_destination("nothing-here")).manifest)
    name = launch("pricing", run_id, nothing, Launcher.of(settings))
    assert f"/operations/{settings.prefix}pricing-" in name
    record = wait_for(lambda: execution(stack, run_id), timeout_s=120)
    assert record is not None and record["succeeded"] is False
    # The job as the dev environment declares it: 2 tasks, max_retries 1.
    shape = environment(stack.environment)["training"]["pricing"]
    attempts = shape["max_retries"] + 1
    assert [t["attempts"] for t in record["tasks"]] == [attempts] * shape["task_count"]
    log = next(
        (stack.state_dir / "cloud-run" / "executions").glob(
            f"{record['execution']}-task0-attempt{attempts - 1}.log"
        )
    )
    assert "no manifest at" in log.read_text()
    # ... and as the Admin API tells it (the desk's runs page reads this)
    listed = clients.executions_client(settings).list_executions(
        parent=name.split("/operations/")[0] + f"/jobs/{settings.prefix}pricing"
    )
    found = next(e for e in listed if any(v.value == run_id for c in e.template.containers
                                           for v in c.env))  # fmt: skip
    assert (found.failed_count, found.succeeded_count, found.running_count) == (2, 0, 0)
    assert found.completion_time > found.start_time
    (completed,) = found.conditions
    assert completed.type_ == "Completed" and completed.state == completed.State.CONDITION_FAILED
    assert "exited with code 2" in completed.message


def test_a_scheduler_tick_becomes_one_fetch_request_that_asks_for_training(stack, settings):
    import base64
    from pathlib import Path

    from functions_framework import create_app

    from shared.messages import parse

    from ..integration.helpers import Tap

    source = str(Path(__file__).parents[2] / "functions" / "main.py")
    client = create_app("schedule_training", source, "cloudevent").test_client()
    tap = Tap(settings, topology.FETCH_REQUESTS)
    try:
        tick = {
            "job": "promotions",
            "table": f"{settings.source_dataset}.transactions",
            "date": "2026-11-28",
        }
        sub = "projects/p/subscriptions/schedule-training"
        data = base64.b64encode(json.dumps(tick).encode()).decode()
        body = {"message": {"data": data, "messageId": "1"}, "subscription": sub}
        assert client.post("/", json=body).status_code == 200
        bad = {
            "message": {"data": base64.b64encode(b'{"job": "nope"}').decode(), "messageId": "2"},
            "subscription": sub,
        }
        assert client.post("/", json=bad).status_code == 200  # acknowledged, logged
        [published] = [parse(FetchRequest, m, "fetch-requests") for m in tap.drain_now()]
    finally:
        tap.close()
    assert published.run_id == "promotions-20261128" and published.train == ["promotions"]
    assert published.destination.endswith("/fetch/promotions-20261128")
