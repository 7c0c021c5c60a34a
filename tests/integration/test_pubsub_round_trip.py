"""Publish with the official Pub/Sub client; observe plan_fetch's effect through the emulators."""

import json
import uuid

import pytest

from shared import clients, topology
from shared.messages import ChunkReady, FetchRequest, dump, parse

from .helpers import Tap, function_logs, relay_counts, wait_answered, wait_for

pytestmark = pytest.mark.stack


@pytest.fixture
def tap(settings):
    tap = Tap(settings, topology.FETCH_CHUNK_READY)
    yield tap
    tap.close()


def publish(settings, body: bytes) -> str:
    publisher = clients.publisher_client(settings)
    return publisher.publish(
        publisher.topic_path(settings.project, settings.topic(topology.FETCH_REQUESTS)), body
    ).result()


def request(settings, **overrides) -> FetchRequest:
    run_id = f"t-{uuid.uuid4().hex[:8]}"
    fields = {
        "run_id": run_id,
        "table": f"{settings.source_dataset}.transactions",
        "destination": f"gs://{settings.data_bucket}/fetch/{run_id}",
        "parallelism": 3,
    }
    return FetchRequest(**{**fields, **overrides})


def plan_object(settings, req):
    blob = (
        clients.storage_client(settings)
        .bucket(settings.data_bucket)
        .blob(req.destination.split("/", 3)[3] + "/_plan.json")
    )
    return json.loads(blob.download_as_bytes()) if blob.exists() else None


def chunks_of(tap, run_id, want):
    def got():
        mine = [parse(ChunkReady, m, "t") for m in tap.drain(1.0)]
        # offset 0: announced by plan_fetch (later offsets are fetch_chunk's hand-offs)
        mine = [c for c in mine if c.run_id == run_id and c.offset == 0]
        return mine if len(mine) >= want else None

    return wait_for(got, timeout_s=30) or []


def test_request_becomes_one_chunk_message_per_stream(stack, settings, retail, tap):
    req = request(
        settings,
        columns=["date", "units"],
        row_filter=[{"column": "units", "op": ">", "values": [1]}],
    )
    publish(settings, dump(req))
    plan = wait_for(lambda: plan_object(settings, req))
    assert plan is not None, "plan_fetch recorded no plan"
    chunks = chunks_of(tap, req.run_id, len(plan["chunks"]))
    assert sorted(c.chunk for c in chunks) == list(range(len(plan["chunks"])))
    assert {c.stream for c in chunks} == {c["stream"] for c in plan["chunks"]}
    assert all(c.destination == req.destination and c.offset == 0 for c in chunks)
    assert plan["estimated_rows"] > 0
    assert plan["table"] == req.table


def test_redelivered_request_reuses_the_plan_and_announces_its_streams_once(
    stack, settings, retail, tap
):
    req = request(settings)
    publish(settings, dump(req))
    first = wait_for(lambda: plan_object(settings, req))
    assert first is not None
    publish(settings, dump(req))  # the same request again, as a redelivery would bring it
    logs = wait_for(
        lambda: (
            len(function_logs(stack, "plan_fetch", run_id=req.run_id)) == 2
            and function_logs(stack, "plan_fetch", run_id=req.run_id)
        )
    )
    assert [line["reused_plan"] for line in logs] == [False, True]
    assert [line["announced"] for line in logs] == [True, False]  # claimed: announced once
    chunks = chunks_of(tap, req.run_id, len(first["chunks"]))
    assert {c.stream for c in chunks} == {c["stream"] for c in first["chunks"]}
    assert len(chunks) == len(first["chunks"])  # not twice
    assert plan_object(settings, req) == first


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"table": "retail-local.retail.no_such_table"}, "no_such_table"),
        ({"columns": ["date", "no_such_column"]}, "no_such_column"),
        ({"row_filter": [{"column": "units", "op": "=", "values": ["1 OR 1=1"]}]}, "units"),
        ({"destination": "gs://no-such-bucket-xyz/out"}, "no-such-bucket-xyz"),
    ],
)
def test_bad_request_fails_at_planning_and_creates_nothing(
    stack, settings, retail, tap, overrides, reason
):
    req = request(settings, **overrides)
    before = relay_counts(stack, "plan-fetch")
    message_id = publish(settings, dump(req))
    lines = wait_for(lambda: function_logs(stack, "plan_fetch", message_id=message_id))
    after = wait_answered(stack, "plan-fetch", before, 1)  # answered: its effects are done
    assert len(lines) == 1 and lines[0]["severity"] == "ERROR"
    assert reason in lines[0]["message"]
    assert lines[0]["outcome"] == "acknowledged"
    if "no-such-bucket" in reason:
        assert clients.storage_client(settings).lookup_bucket("no-such-bucket-xyz") is None
    else:
        assert plan_object(settings, req) is None
    assert after["nacked"] == before["nacked"]  # acknowledged, so never redelivered
    assert not [m for m in tap.drain_now() if req.run_id.encode() in m]


def test_malformed_message_is_acknowledged_not_redelivered(stack, settings):
    dead = clients.subscriber_client(settings)
    dead_path = dead.subscription_path(
        settings.project, settings.prefix + topology.DEAD_LETTER_SUBSCRIPTION
    )
    before = relay_counts(stack, "plan-fetch")
    message_id = publish(settings, b'{"table": "x.y.z; DROP TABLE t", "destination": "gs://b/x"}')
    first = wait_for(lambda: function_logs(stack, "plan_fetch", message_id=message_id))
    assert first and first[0]["field"] == "table"
    assert "malformed fetch-requests message" in first[0]["message"]
    # The observable end: the relay had the function's answer, an ack (a nack would bring the
    # message back after the backoff).
    after = wait_answered(stack, "plan-fetch", before, 1)
    assert after["acked"] > before["acked"] and after["nacked"] == before["nacked"]
    assert len(function_logs(stack, "plan_fetch", message_id=message_id)) == 1
    response = dead.pull(subscription=dead_path, max_messages=10, timeout=3)
    assert not [m for m in response.received_messages if m.message.message_id == message_id]
