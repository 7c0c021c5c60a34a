"""The fetch pipeline end to end on the local stack: exact rows, duplicates, kills, faults."""

import json
import os
import signal
import time
import uuid

import pyarrow as pa
import pytest

from local.stack import function_component, running_pgid, up
from local.storage_proxy import Limits, read_timeline, serve, write_control
from shared import clients, topology
from shared.fetch.checksum import checksum_batches, checksum_table
from shared.fetch.library import dataset_from_manifest, run_in_process
from shared.fetch.worker import _Stream
from shared.messages import ChunkDone, FetchRequest, dump
from shared.settings import Settings

from ..conftest import FUNCTION_ENV
from .helpers import function_logs, relay_counts, wait_answered, wait_for

pytestmark = pytest.mark.stack


def source_checksum(settings, table, columns=None, restriction=""):
    """Rows and checksum of the source, read straight from the Storage Read API."""
    from google.cloud.bigquery_storage_v1 import types

    read = clients.bigquery_read_client(settings)
    session = read.create_read_session(
        parent=f"projects/{settings.project}",
        read_session=types.ReadSession(
            table="projects/{}/datasets/{}/tables/{}".format(*table.split(".")),
            data_format=types.DataFormat.ARROW,
            read_options=types.ReadSession.TableReadOptions(
                selected_fields=columns or [], row_restriction=restriction
            ),
        ),
        max_stream_count=1,
    )
    stream = _Stream(read, session.streams[0].name, 0, max_attempts=3, sleep=time.sleep)
    return checksum_table(pa.Table.from_batches(list(stream.batches())))


def manifest_of(settings, destination):
    bucket, _, path = destination.removeprefix("gs://").partition("/")
    blob = clients.storage_client(settings).bucket(bucket).get_blob(f"{path}/_manifest.json")
    return (json.loads(blob.download_as_bytes()), blob.generation) if blob else (None, None)


def fetched_checksum(settings, manifest):
    dataset = dataset_from_manifest(manifest, settings)
    return checksum_batches(dataset.to_batches(), dataset.schema.names)


def new_request(settings, prefix="f", **fields):
    """A fetch request of the test retailer's transactions to a fresh destination."""
    run_id = f"{prefix}-{uuid.uuid4().hex[:8]}"
    return FetchRequest(
        run_id=run_id,
        destination=f"gs://{settings.data_bucket}/fetch/{run_id}",
        **{"table": f"{settings.source_dataset}.transactions", "parallelism": 4, **fields},
    )


def publish_request(settings, **fields):
    request = new_request(settings, **fields)
    publisher = clients.publisher_client(settings)
    publisher.publish(
        publisher.topic_path(settings.project, settings.topic(topology.FETCH_REQUESTS)),
        dump(request),
    ).result()
    return request


def wait_manifest(settings, request, timeout_s=90):
    return wait_for(lambda: manifest_of(settings, request.destination)[0], timeout_s=timeout_s)


def test_pubsub_fan_out_delivers_exactly_the_source_rows(stack, settings, retail):
    request = publish_request(settings)
    manifest = wait_manifest(settings, request)
    assert manifest is not None, "the run did not complete"
    table = request.table
    assert (manifest["rows"], fetched_checksum(settings, manifest)) == (
        retail["rows"]["transactions"],
        source_checksum(settings, table),
    )
    assert manifest["rows"] == sum(p["rows"] for p in manifest["parts"])
    assert all(p["rows"] <= 4000 and p["crc32c"] for p in manifest["parts"])
    assert [c["name"] for c in manifest["schema"]][:3] == ["date", "store_id", "product_id"]
    # Small parts and no time budget: chunks were handed on from function call to call.
    handoffs = [
        e for e in function_logs(stack, "fetch_chunk", run_id=request.run_id) if e.get("offset")
    ]
    assert handoffs


def test_filter_and_columns_are_applied(stack, settings, retail):
    request = publish_request(
        settings,
        columns=["product_id", "units"],
        row_filter=[{"column": "units", "op": ">=", "values": [5]}],
    )
    manifest = wait_manifest(settings, request)
    assert manifest is not None
    rows, checksum = fetched_checksum(settings, manifest)
    assert (rows, checksum) == source_checksum(
        settings, request.table, ["product_id", "units"], "units >= 5"
    )
    assert 0 < rows < retail["rows"]["transactions"]


def test_every_message_delivered_twice_gives_the_same_run(stack, settings, retail):
    request = publish_request(settings)
    assert wait_manifest(settings, request) is not None
    first, generation = manifest_of(settings, request.destination)
    gcs = clients.storage_client(settings)
    bucket = gcs.bucket(settings.data_bucket)
    prefix = request.destination.split("/", 3)[3]
    plan = json.loads(bucket.blob(f"{prefix}/_plan.json").download_as_bytes())
    done = [
        ChunkDone.model_validate_json(b.download_as_bytes())
        for b in gcs.list_blobs(bucket, prefix=f"{prefix}/_chunks/")
    ]
    publisher = clients.publisher_client(settings)
    finalizing = relay_counts(stack, "finalize-fetch")

    def again(topic, payloads):
        path = publisher.topic_path(settings.project, settings.topic(topic))
        for payload in payloads:
            publisher.publish(path, payload).result()

    again(topology.FETCH_REQUESTS, [dump(request)])
    again(topology.FETCH_CHUNK_READY, [json.dumps(c).encode() for c in plan["chunks"]])
    again(topology.FETCH_CHUNK_DONE, [dump(d) for d in done])
    # Wait until the duplicate chunks have been read again and recorded again.
    wait_for(
        lambda: (
            len(function_logs(stack, "finalize_fetch", run_id=request.run_id)) >= 1
            and len(
                [
                    e
                    for e in function_logs(stack, "fetch_chunk", run_id=request.run_id)
                    if e.get("rows")
                ]
            )
            >= 2 * len(plan["chunks"])
        ),
        timeout_s=60,
    )
    # The observable end: finalize_fetch answered every duplicate ChunkDone and the one each
    # re-read chunk produced; only then is "untouched" a fact.
    after = wait_answered(stack, "finalize-fetch", finalizing, len(done) + len(plan["chunks"]))
    assert after["nacked"] == finalizing["nacked"]
    second, generation2 = manifest_of(settings, request.destination)
    assert (second, generation2) == (first, generation)  # declared complete once, untouched
    assert fetched_checksum(settings, second) == source_checksum(settings, request.table)
    parts = [b.name for b in gcs.list_blobs(bucket, prefix=f"{prefix}/part-")]
    assert sorted(parts) == sorted(p["uri"].split("/", 3)[3] for p in first["parts"])


def test_worker_killed_mid_chunk_is_redelivered_and_gives_exact_rows(stack, settings, retail):
    """The deliveries a killed instance held fail (a reset connection), Pub/Sub redelivers
    them to a new instance, and the run completes with exactly the source's rows: no
    operator."""
    before = relay_counts(stack, "fetch-chunk")
    # Reads slowed to seconds a part: the kill lands while deliveries are in flight.
    write_control(stack.read_proxy_control, Limits(bandwidth_bytes_s=40_000))
    try:
        request = publish_request(settings, parallelism=4)
        prefix = request.destination.split("/", 3)[3]
        gcs = clients.storage_client(settings)
        assert wait_for(
            lambda: len(list(gcs.list_blobs(settings.data_bucket, prefix=f"{prefix}/part-"))) >= 1
        )
        comp = function_component("fetch_chunk")
        os.killpg(running_pgid(stack, comp), signal.SIGKILL)
        killed_before_done = manifest_of(settings, request.destination)[0] is None
        up(stack, say=lambda _m: None)  # a new instance, as Cloud Functions would start
        manifest = wait_manifest(settings, request)
    finally:
        write_control(stack.read_proxy_control, None)
    assert killed_before_done and manifest is not None
    after = relay_counts(stack, "fetch-chunk")
    assert after["nacked"] > before["nacked"]  # the redelivery path ran
    assert fetched_checksum(settings, manifest) == source_checksum(settings, request.table)


def test_a_stalled_run_is_finished_by_the_operators_resume(stack, settings, retail):
    """A run planned whose chunk messages never went out (lost, or dead-lettered and purged)
    stalls; ``retail fetch --resume`` announces every unfinished chunk again and the run
    completes with exactly the source's rows."""
    from shared.cli import main
    from shared.fetch import runs
    from shared.fetch.library import plan_for

    request = new_request(settings, parallelism=3)
    plan_for(request, request.run_id, settings)  # planned, nothing announced: stalled
    gcs = clients.storage_client(settings)
    assert runs.state(gcs, request.destination).state == "running"
    assert runs.rows_done(gcs, request.destination) == 0
    assert main(["fetch", "--resume", request.destination]) == 0
    manifest = wait_manifest(settings, request)
    assert manifest is not None
    assert fetched_checksum(settings, manifest) == source_checksum(settings, request.table)


@pytest.mark.parametrize(
    "limits",
    [
        Limits(fail_once_after_rows=1500, max_rows_per_response=1000),
        Limits(max_concurrent_streams=1),
        Limits(
            bandwidth_bytes_s=4e6,
            fail_once_after_rows=1000,
            max_concurrent_streams=2,
            max_rows_per_response=500,
        ),
    ],
    ids=["unavailable-mid-stream", "resource-exhausted", "all-limits"],
)
def test_in_process_fetch_survives_gcp_faults(stack, settings, retail, limits):
    server, proxy = serve("127.0.0.1:0", f"127.0.0.1:{stack.bq_grpc_port}", limits)
    try:
        proxied = Settings.from_env(
            {**stack.client_env(), **FUNCTION_ENV, "BIGQUERY_STORAGE_EMULATOR_HOST": proxy.address}
        )
        request = new_request(settings, "x")
        manifest = run_in_process(request, proxied, workers=4)
    finally:
        server.stop(0)
    full = manifest_of(settings, manifest["uri"].removesuffix("/_manifest.json"))[0]
    assert fetched_checksum(settings, full) == source_checksum(settings, request.table)
    assert proxy.stats["faults"] + proxy.stats["rejected"] > 0  # the faults did happen


def test_the_benchmark_proxy_widens_sessions_slows_one_stream_and_records_each(
    stack, settings, retail, tmp_path
):
    """The control file puts a running proxy in a mode and back: 16 streams asked, 16 served
    (the emulator alone stops at 10), one of them slow, every stream's end recorded, and the
    fetch still has exactly the source's rows."""
    control, timeline = tmp_path / "proxy.json", tmp_path / "timeline.jsonl"
    server, proxy = serve("127.0.0.1:0", f"127.0.0.1:{stack.bq_grpc_port}", None, control)
    try:
        proxied = Settings.from_env(
            {
                **stack.client_env(),
                **FUNCTION_ENV,
                "BIGQUERY_STORAGE_EMULATOR_HOST": proxy.address,
                "RETAIL_MAX_STREAMS": "16",
            }
        )
        mode = Limits(
            bandwidth_bytes_s=2e6,
            slow_first_stream=True,
            slow_factor=0.25,
            split_to_requested=True,
        )
        write_control(control, mode, timeline)
        request = new_request(settings, "w", parallelism=16)
        manifest = run_in_process(request, proxied, workers=4)
        write_control(control, None)
        again = new_request(settings, "w", parallelism=16)
        run_in_process(again, proxied, workers=4)
    finally:
        server.stop(0)
    streams = read_timeline(timeline)
    source = source_checksum(settings, request.table)
    assert len({s["stream"] for s in streams}) == 16
    assert sum(s["rows"] for s in streams) == source[0]
    # One straggler, served at a quarter of the rate whatever the machine's load (the bucket
    # starts empty, so its bytes took at least bytes / rate; 4x what the others were allowed).
    (slow,) = [s for s in streams if s["slow"]]
    assert slow["end"] - slow["start"] >= slow["bytes"] / (mode.bandwidth_bytes_s / 4) - 0.01
    full = manifest_of(settings, manifest["uri"].removesuffix("/_manifest.json"))[0]
    assert fetched_checksum(settings, full) == source
    # Back to the emulator's own session: fewer streams (chunks), nothing more recorded.
    plain = manifest_of(settings, again.destination)[0]
    assert plain["rows"] == source[0] and len(read_timeline(timeline)) == len(streams)
    assert len({p["uri"].rsplit("/", 1)[-1][5:10] for p in plain["parts"]}) < 16


def test_a_message_that_keeps_failing_is_dead_lettered_and_can_be_redriven(stack, settings):
    """The Cloud Run Admin API is unreachable (its local server stopped): launch_training fails
    transiently on every delivery, the message is dead-lettered, nothing is lost; once the API
    is back, a redrive starts the execution."""
    from local.stack import EMULATORS, _start_all, _stop, dead_letters, redrive
    from shared.messages import FetchComplete

    cloud_run = next(c for c in EMULATORS if c.name == "cloud-run")
    run_id = f"d-{uuid.uuid4().hex[:8]}"
    complete = FetchComplete(
        run_id=run_id,
        manifest_uri=f"gs://{settings.data_bucket}/fetch/{run_id}/_manifest.json",
        rows=0, bytes=0, parts=0, train=["promotions"],
    )  # fmt: skip
    _stop(stack, cloud_run)
    try:
        publisher = clients.publisher_client(settings)
        publisher.publish(
            publisher.topic_path(settings.project, settings.topic(topology.FETCH_COMPLETE)),
            dump(complete),
        ).result()
        # Five failed deliveries (backoff from 1 s), then the dead-letter topic holds it.
        assert wait_for(lambda: dead_letters(stack).get("launch-training", 0) >= 1, timeout_s=120)
        failures = [
            e
            for e in function_logs(stack, "launch_training", outcome="retry")
            if e.get("error_type") == "ServiceUnavailable"
        ]
        assert len(failures) >= 5
        # Looking does not consume it.
        assert dead_letters(stack).get("launch-training", 0) >= 1
    finally:
        _start_all(stack, [cloud_run], lambda _m: None)
    assert redrive(stack)[topology.FETCH_COMPLETE] >= 1
    executions = stack.state_dir / "cloud-run" / "executions"
    assert wait_for(
        lambda: any(
            json.loads(p.read_text()).get("run_id") == run_id
            for p in executions.glob(f"{stack.names.job('promotions')}-*.json")
        ),
        timeout_s=120,
    )
