"""Exactly once under real concurrency (issue 14): the same message delivered N times at the
same moment, to the real function processes of the stack over HTTP (threads) and to the
shared code from several OS processes, gives exactly one side effect, counted where it lands:
messages on the next topic, job executions through the Cloud Run Admin API, claims on GCS."""

from __future__ import annotations

import base64
import dataclasses
import json
import multiprocessing
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from shared import claims, clients, topology
from shared.fetch.finalize import finalize
from shared.fetch.layout import RunLayout
from shared.fetch.library import plan_for
from shared.fetch.worker import fetch_chunk
from shared.messages import ChunkDone, ChunkReady, FetchComplete, dump, parse
from shared.training.launch import Launcher, executions_of_run, job_name, launch

from .helpers import Tap, wait_for
from .test_fetch_pipeline import new_request

pytestmark = pytest.mark.stack

N_THREADS = 8
N_PROCESSES = 4


def push(stack, entry_point: str, topic: str, body: bytes, message_id: str) -> int:
    """One push delivery, as Pub/Sub sends it, to the function process of the stack."""
    url = f"http://127.0.0.1:{stack.function_port(entry_point)}/projects/{stack.project}/topics/{topic}"
    envelope = {
        "message": {"data": base64.b64encode(body).decode(), "messageId": message_id},
        "subscription": f"projects/{stack.project}/subscriptions/{entry_point}",
    }
    return requests.post(url, json=envelope, timeout=120).status_code


def deliver_concurrently(stack, entry_point, topic, body, n=N_THREADS) -> list[int]:
    """The same message (same id) delivered ``n`` times at once."""
    start = threading.Barrier(n)
    message_id = str(uuid.uuid4().int % 10**12)

    def one(_):
        start.wait()
        return push(stack, entry_point, topic, body, message_id)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def chunk_results(settings, request) -> list[ChunkDone]:
    """Plan the run and read every chunk here, without announcing anything."""
    plan = plan_for(request, request.run_id, settings)
    done = []
    for chunk in plan.chunks:
        message: ChunkReady | ChunkDone = chunk
        while isinstance(message, ChunkReady):
            message = fetch_chunk(
                message,
                read_client=clients.bigquery_read_client(settings),
                gcs=clients.storage_client(settings),
                part_rows=settings.part_max_rows,
                time_budget_s=3600,
            ).following
        done.append(message)
    return done


def messages_for(tap, model, topic, run_id) -> list:
    """What the tap holds for the run: called after the deliveries returned (observable end)."""
    return [m for m in (parse(model, raw, topic) for raw in tap.drain_now()) if m.run_id == run_id]


def test_the_last_chunk_delivered_8_times_at_once_publishes_fetch_complete_once(
    stack, settings, retail
):
    request = new_request(settings, "once", parallelism=3)
    done = chunk_results(settings, request)
    gcs = clients.storage_client(settings)
    for chunk in done[:-1]:
        assert finalize(chunk, gcs=gcs).complete is None  # recorded, the run not complete yet
    tap = Tap(settings, topology.FETCH_COMPLETE)
    try:
        statuses = deliver_concurrently(
            stack, "finalize_fetch", settings.topic(topology.FETCH_CHUNK_DONE), dump(done[-1])
        )
        assert statuses == [200] * N_THREADS
        published = messages_for(tap, FetchComplete, "fetch-complete", request.run_id)
    finally:
        tap.close()
    assert len(published) == 1, f"{len(published)} fetch-complete messages for one run"
    claim = claims.read(gcs.bucket(settings.data_bucket),
                        f"fetch/{request.run_id}/_claims/fetch-complete.json")  # fmt: skip
    assert claim is not None and claim[0]["result"]["run_id"] == request.run_id


def _finalize_in_process(args) -> bool:
    """A separate OS process finalizing the same chunk; True if it published."""
    env, done_json, topic = args
    import os

    os.environ.update(env)
    from shared import clients
    from shared.messages import ChunkDone
    from shared.pubsub import publish_all
    from shared.settings import Settings

    settings = Settings.from_env()
    publisher = clients.publisher_client(settings)
    result = finalize(
        ChunkDone.model_validate_json(done_json),
        gcs=clients.storage_client(settings),
        publish=lambda m: publish_all(publisher, settings.project, topic, [m])[0],
    )
    return result.published


def test_finalize_from_4_processes_x_2_threads_publishes_once(stack, settings, retail):
    request = new_request(settings, "once-p", parallelism=2)
    done = chunk_results(settings, request)
    gcs = clients.storage_client(settings)
    for chunk in done[:-1]:
        finalize(chunk, gcs=gcs)
    tap = Tap(settings, topology.FETCH_COMPLETE)
    topic = settings.topic(topology.FETCH_COMPLETE)
    args = [(stack.client_env(), done[-1].model_dump_json(), topic)] * (2 * N_PROCESSES)
    try:
        with multiprocessing.get_context("spawn").Pool(N_PROCESSES) as pool:
            published_by = pool.map(_finalize_in_process, args)
        published = messages_for(tap, FetchComplete, "fetch-complete", request.run_id)
    finally:
        tap.close()
    assert sum(published_by) == 1 and len(published) == 1


def executions_of(settings, job, run_id) -> int:
    name = job_name(settings.project, settings.region, settings.prefix, job)
    return len(executions_of_run(clients.executions_client(settings), name, run_id))


def test_fetch_complete_delivered_8_times_at_once_starts_one_execution_per_job(stack, settings):
    run_id = f"launch-{uuid.uuid4().hex[:8]}"
    complete = FetchComplete(
        run_id=run_id,
        manifest_uri=f"gs://{settings.data_bucket}/fetch/{run_id}/_manifest.json",
        rows=0, bytes=0, parts=0, train=["pricing", "promotions"],
    )  # fmt: skip
    statuses = deliver_concurrently(
        stack, "launch_training", settings.topic(topology.FETCH_COMPLETE), dump(complete)
    )
    # launch_training serves 5 at once (its max instances): as deployed, the deliveries
    # beyond are refused with 429 (Pub/Sub would retry them); those served start one
    # execution per job between them.
    served = statuses.count(200)
    assert set(statuses) <= {200, 429} and served >= 1
    assert executions_of(settings, "pricing", run_id) == 1
    assert executions_of(settings, "promotions", run_id) == 1


def test_a_launch_whose_holder_died_is_found_not_repeated(stack, settings):
    """The holder started the execution but died before recording it: after the lease, the
    next delivery finds the execution through the Admin API instead of starting another."""
    run_id = f"died-{uuid.uuid4().hex[:8]}"
    launcher = Launcher.of(settings)
    manifest = str(RunLayout.of(settings.fetch_destination(run_id)).manifest)
    assert launch("pricing", run_id, manifest, launcher) is not None
    # The claim as a holder that died right after RunJob would leave it: no result.
    bucket = clients.storage_client(settings).bucket(settings.data_bucket)
    path = f"training/pricing/{run_id}/_launch.json"
    bucket.blob(path).upload_from_string(
        json.dumps({"holder": "dead", "claimed_at": "2020-01-01T00:00:00+00:00"})
    )
    assert launch("pricing", run_id, manifest, dataclasses.replace(launcher, lease_s=1)) is None
    assert executions_of(settings, "pricing", run_id) == 1
    record = claims.read(bucket, path)[0]
    assert record["result"]["found_by"] == "list_executions"


def test_a_fetch_request_delivered_8_times_at_once_is_planned_and_announced_once(
    stack, settings, retail
):
    request = new_request(settings, "plan-once", parallelism=3)
    tap = Tap(settings, topology.FETCH_CHUNK_READY)
    try:
        statuses = deliver_concurrently(
            stack, "plan_fetch", settings.topic(topology.FETCH_REQUESTS), dump(request)
        )
        assert statuses == [200] * N_THREADS
        # Every delivery returned: whatever they published is on the tap now.
        announced = [
            m for m in (json.loads(raw) for raw in tap.drain_now())
            if m["run_id"] == request.run_id and m.get("offset", 0) == 0
        ]  # fmt: skip
    finally:
        tap.close()
    plan = json.loads(
        clients.storage_client(settings).bucket(settings.data_bucket)
        .blob(f"fetch/{request.run_id}/_plan.json").download_as_bytes()
    )  # fmt: skip
    assert len(announced) == len(plan["chunks"]) == 3  # each stream announced once, not 8 times
    assert wait_for(lambda: (clients.storage_client(settings).bucket(settings.data_bucket)
                             .blob(f"fetch/{request.run_id}/_manifest.json").exists()),
                    timeout_s=90)  # fmt: skip


def test_claims_from_16_threads_act_once_and_a_failed_act_releases_the_claim(stack, settings):
    bucket = clients.storage_client(settings).bucket(settings.data_bucket)
    path = f"claims-test/{uuid.uuid4().hex}.json"
    acted = []
    start = threading.Barrier(16)

    def act():
        acted.append(1)
        time.sleep(0.3)  # others arrive while the holder is acting
        return {"n": 1}

    def one(_):
        start.wait()
        return claims.once(bucket, path, act, lease_s=30, poll_s=0.05)

    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(one, range(16)))
    assert len(acted) == 1 and sum(o.acted for o in outcomes) == 1
    assert all(o.result == {"n": 1} for o in outcomes)

    failing = f"claims-test/{uuid.uuid4().hex}.json"

    def boom():
        raise RuntimeError("RunJob refused")

    with pytest.raises(RuntimeError):
        claims.once(bucket, failing, boom)
    assert claims.read(bucket, failing) is None  # released: a retry need not wait the lease
    assert claims.once(bucket, failing, lambda: {"ok": True}).acted
