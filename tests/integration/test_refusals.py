"""The local cloud refuses what Google Cloud refuses, and the platform survives it: a fan-out
wider than a function's capacity meets 429s and still completes with no dead letter; a run
started while IAM grants propagate (403s) completes; a 403 that lasts fails the run with the
reason."""

import dataclasses
import json

import pytest

from local.function_host import host_stats
from local.stack import dead_letters, function_component, up
from local.stack.components import PUSH_RELAY
from local.stack.processes import _stop
from shared import clients
from shared.fetch import runs
from shared.fetch.layout import RunLayout

from ..conftest import FUNCTION_ENV, REPO, TEST_STACK_ENV
from .helpers import function_logs, relay_counts, wait_answered, wait_for
from .test_fetch_pipeline import fetched_checksum, publish_request, source_checksum, wait_manifest

pytestmark = pytest.mark.stack

# A stack of this module's own: its tests restart functions with narrow capacities and faults,
# and measure refusals and dead letters, which another test's backlog would blur.
# Its ports sit 10,000 above the test stack's, below Linux's ephemeral range (32768-60999):
# at +20,000 a client socket of another test once held 38096 and the stack could not start.
OWN_STACK_ENV = {
    **TEST_STACK_ENV,
    **{k: str(int(v) + 10000) for k, v in TEST_STACK_ENV.items() if k.endswith("_PORT")},
    "RETAIL_STACK_DIR": str(REPO / ".local" / "test-stack-refusals"),
}


@pytest.fixture(scope="module")
def stack():
    from local.stack import StackConfig, down

    cfg = StackConfig.from_env({**OWN_STACK_ENV, **FUNCTION_ENV})
    up(cfg, say=lambda _msg: None)
    try:
        yield cfg
    finally:
        down(cfg, say=lambda _msg: None)


@pytest.fixture(scope="module")
def settings(stack):
    from shared.settings import Settings

    return Settings.from_env({**stack.client_env(), **FUNCTION_ENV})


@pytest.fixture(scope="module")
def retail(stack, settings):
    from shared.cli import generate_data

    return generate_data(60_000, 7, stack.names.dataset("source"), settings, quiet=True)


@pytest.fixture
def restart(stack):
    """Restart functions with another configuration (capacity, faults); back as they were
    after the test."""
    changed: list[str] = []

    def with_config(entry_points: list[str], **changes):
        # The relay too: its push window follows the functions' capacity.
        for component in (*map(function_component, entry_points), PUSH_RELAY):
            _stop(stack, component)
        changed.extend(entry_points)
        up(dataclasses.replace(stack, **changes), say=lambda _m: None)

    yield with_config
    for component in (*map(function_component, changed), PUSH_RELAY):
        _stop(stack, component)
    up(stack, say=lambda _m: None)


def test_a_fan_out_four_times_wider_than_the_function_completes_with_no_dead_letter(
    stack, settings, retail, restart
):
    restart(["fetch_chunk"], capacities=(("fetch_chunk", 2),))
    assert host_stats(stack.function_port("fetch_chunk"))["capacity"] == 2
    letters = dead_letters(stack).get("fetch-chunk", 0)
    before = relay_counts(stack, "fetch-chunk")
    request = publish_request(settings, parallelism=8)
    manifest = wait_manifest(settings, request, timeout_s=180)
    assert manifest is not None
    after = relay_counts(stack, "fetch-chunk")
    assert after["refused"] > before["refused"]  # the 429 path ran: refused, then retried
    assert host_stats(stack.function_port("fetch_chunk"))["peak"] <= 2
    assert dead_letters(stack).get("fetch-chunk", 0) == letters
    assert fetched_checksum(settings, manifest) == source_checksum(settings, request.table)


def test_a_run_started_while_iam_grants_propagate_completes(stack, settings, retail, restart):
    """plan_fetch's and fetch_chunk's Google API calls answer 403 for their first 15 s:
    the deliveries fail, Pub/Sub brings them back, and the run completes once the grants
    are there."""
    restart(["plan_fetch", "fetch_chunk"], iam_deny=(("plan_fetch", 15), ("fetch_chunk", 15)))
    before = relay_counts(stack, "plan-fetch")
    request = publish_request(settings, parallelism=3)
    manifest = wait_manifest(settings, request, timeout_s=180)
    assert manifest is not None
    assert relay_counts(stack, "plan-fetch")["nacked"] > before["nacked"]
    retried = [
        line
        for line in function_logs(stack, "plan_fetch")
        if line.get("outcome") == "retry" and line.get("error_type") == "Forbidden"
    ]
    assert retried  # the 403 was met, and redelivered rather than failed
    assert fetched_checksum(settings, manifest) == source_checksum(settings, request.table)


def test_a_403_that_outlasts_the_propagation_window_fails_the_run_with_the_reason(
    stack, settings, retail, restart
):
    """fetch_chunk's Storage Read calls stay refused; with a propagation window of 3 s the
    stream message is retried while young, then the run ends failed, saying why."""
    tuning = (*stack.tuning, ("RETAIL_IAM_PROPAGATION_S", "3"))
    restart(
        ["fetch_chunk"],
        iam_deny=(("fetch_chunk:bigquerystorage", 600),),
        tuning=tuning,
    )
    before = relay_counts(stack, "fetch-chunk")
    request = publish_request(settings, parallelism=1)
    gcs = clients.storage_client(settings)
    ended = wait_for(
        lambda: (s := runs.state(gcs, request.destination)).state == "failed" and s,
        timeout_s=120,
    )
    assert ended, "the run did not end"
    assert ended.detail.startswith("fetch_chunk: 403")
    assert "Permission denied" in ended.detail
    assert relay_counts(stack, "fetch-chunk")["nacked"] > before["nacked"]  # retried first
    record = RunLayout.of(request.destination).failed
    failed = json.loads(gcs.bucket(record.bucket).blob(record.path).download_as_bytes())
    assert failed["run_id"] == request.run_id


def test_a_9_mb_request_is_refused_by_the_function_and_shown_by_status_and_redrive(stack, settings):
    """Defect 13: Pub/Sub takes messages up to 10 MB; the local channels kept gRPC's 4 MB
    receive limit, so a 9 MB request never reached plan_fetch and status could not pull it."""
    from local.stack import redrive
    from shared import topology

    publisher = clients.publisher_client(settings)
    oversized = b'{"table": "p-1234.d.t", "pad": "' + b"x" * 9_000_000 + b'"}'
    before = relay_counts(stack, "plan-fetch")
    message_id = publisher.publish(
        publisher.topic_path(settings.project, settings.topic(topology.FETCH_REQUESTS)), oversized
    ).result()
    [line] = wait_for(lambda: function_logs(stack, "plan_fetch", message_id=message_id), 60)
    assert line["outcome"] == "acknowledged" and "larger than 2000000 bytes" in line["message"]
    # The function logs before its answer reaches the relay: read the counts once it has.
    assert wait_answered(stack, "plan-fetch", before, 1)["acked"] > before["acked"]

    # The same message as the dead-letter topic would hold it: status counts it, redrive
    # sends it back to its topic (where it is refused again, with its log line).
    source = f"projects/{stack.project}/subscriptions/{stack.names.subscription('plan-fetch')}"
    publisher.publish(
        publisher.topic_path(settings.project, settings.topic(topology.DEAD_LETTER)),
        oversized,
        CloudPubSubDeadLetterSourceSubscription=source,
    ).result()
    assert dead_letters(stack).get("plan-fetch", 0) >= 1
    assert redrive(stack).get(topology.FETCH_REQUESTS, 0) >= 1
    assert dead_letters(stack).get("plan-fetch", 0) == 0
