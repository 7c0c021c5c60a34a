"""The ``chunk_tables`` strategy on the local stack: balanced chunk tables, query and view
sources, redelivery of every message, temporary tables dropped, bad queries refused."""

import json
import uuid

import pytest

from shared import clients, topology
from shared.errors import InvalidRequest
from shared.fetch.checksum import checksum_table
from shared.fetch.chunks import temp_dataset_id
from shared.fetch.library import fetch_table, run_in_process
from shared.messages import ChunkDone, dump

from .helpers import function_logs, relay_counts, wait_answered, wait_for
from .test_fetch_pipeline import (
    fetched_checksum,
    manifest_of,
    new_request,
    publish_request,
    source_checksum,
    wait_manifest,
)

pytestmark = pytest.mark.stack


def temp_tables(settings):
    dataset = temp_dataset_id(settings.project, settings.temp_dataset)
    return [t.table_id for t in clients.bigquery_client(settings).list_tables(dataset)]


def query_checksum(settings, sql):
    result = clients.bigquery_client(settings).query(sql).result()
    table = result.to_arrow(create_bqstorage_client=False)
    return checksum_table(table)


def chunk_rows(settings, destination):
    gcs = clients.storage_client(settings)
    bucket, _, prefix = destination.removeprefix("gs://").partition("/")
    return [
        ChunkDone.model_validate_json(b.download_as_bytes()).rows
        for b in gcs.list_blobs(bucket, prefix=f"{prefix}/_chunks/")
    ]


def test_chunk_tables_on_pubsub_gives_exact_balanced_chunks_and_drops_tables(
    stack, settings, retail
):
    request = publish_request(
        settings,
        strategy="chunk_tables",
        index_columns=["store_id", "date"],
        row_filter=[{"column": "units", "op": ">=", "values": [2]}],
        parallelism=4,
    )
    manifest = wait_manifest(settings, request)
    assert manifest is not None, "the run did not complete"
    assert manifest["strategy"] == "chunk_tables"
    assert fetched_checksum(settings, manifest) == source_checksum(
        settings, request.table, restriction="units >= 2"
    )
    rows = chunk_rows(settings, request.destination)
    assert len(rows) == 4
    # Quantile bounds on (store_id, date): every chunk within 25% of an even split.
    assert max(rows) <= 1.25 * sum(rows) / 4, rows
    assert wait_for(lambda: not [t for t in temp_tables(settings) if request.run_id[2:] in t])
    created = function_logs(stack, "create_chunk", run_id=request.run_id, function="create_chunk")
    assert len(created) == 4


def test_query_source_is_fetched_whole(stack, settings, retail):
    source = f"{settings.source_dataset}.transactions"
    # CAST: the emulator's CTAS stores SUM(INT64) as HUGEINT (BigQuery keeps INT64).
    sql = (
        f"SELECT store_id, product_id, CAST(SUM(units) AS INT64) AS units, "
        f"SUM(revenue) AS revenue "
        f"FROM `{source}` WHERE units > 0 GROUP BY store_id, product_id;"
    )
    dataset = fetch_table(query=sql, index_columns=["product_id"], parallelism=3, settings=settings)
    assert checksum_table(dataset.to_table()) == query_checksum(settings, sql)


def test_view_needs_chunk_tables_and_then_works(stack, settings, retail):
    bq = clients.bigquery_client(settings)
    view = f"{settings.source_dataset}.promo_rows_{uuid.uuid4().hex[:6]}"
    source = f"{settings.source_dataset}.transactions"
    bq.query(
        f"CREATE VIEW `{view}` AS SELECT * FROM `{source}` WHERE promo_id IS NOT NULL"
    ).result()
    with pytest.raises(InvalidRequest, match=r"is a view.*chunk_tables"):
        fetch_table(view, settings=settings)
    dataset = fetch_table(
        view, strategy="chunk_tables", index_columns=["product_id"], settings=settings
    )
    assert checksum_table(dataset.to_table()) == query_checksum(settings, f"SELECT * FROM `{view}`")


@pytest.mark.parametrize(
    "query",
    [
        "SELECT 1 AS x; DROP TABLE retail.transactions",
        "DELETE FROM retail.transactions WHERE TRUE",
        "SELECT 'unterminated",
    ],
)
def test_a_query_that_is_not_one_select_is_refused_and_nothing_runs(stack, settings, retail, query):
    request = new_request(settings, "q", table=None, query=query, strategy="chunk_tables")
    with pytest.raises(InvalidRequest, match="query"):
        run_in_process(request, settings)
    assert manifest_of(settings, request.destination) == (None, None)
    gcs = clients.storage_client(settings)
    assert not list(gcs.list_blobs(settings.data_bucket, prefix=f"fetch/{request.run_id}"))
    table = clients.bigquery_client(settings).get_table(f"{settings.source_dataset}.transactions")
    assert table.num_rows == retail["rows"]["transactions"]


def test_every_chunk_tables_message_delivered_twice_gives_the_same_run(stack, settings, retail):
    request = publish_request(settings, strategy="chunk_tables", index_columns=["product_id"])
    first = wait_manifest(settings, request)
    assert first is not None
    _, generation = manifest_of(settings, request.destination)
    gcs = clients.storage_client(settings)
    prefix = request.destination.split("/", 3)[3]
    bucket = gcs.bucket(settings.data_bucket)
    plan = json.loads(bucket.blob(f"{prefix}/_plan.json").download_as_bytes())
    ready = [b.download_as_bytes() for b in gcs.list_blobs(bucket, prefix=f"{prefix}/_ready/")]
    publisher = clients.publisher_client(settings)
    creating, finalizing = (
        relay_counts(stack, "create-chunk"),
        relay_counts(stack, "finalize-fetch"),
    )
    for topic, payloads in (
        (topology.FETCH_REQUESTS, [dump(request)]),
        (topology.FETCH_CHUNKS, [json.dumps(c).encode() for c in plan["chunks"]]),
        (
            topology.FETCH_CHUNK_READY,
            [json.dumps(json.loads(r)["message"]).encode() for r in ready],
        ),
    ):
        for payload in payloads:
            publisher.publish(
                publisher.topic_path(settings.project, settings.topic(topic)), payload
            ).result()
    wait_for(
        lambda: (
            len(
                function_logs(stack, "create_chunk", run_id=request.run_id, function="create_chunk")
            )
            >= 2 * len(plan["chunks"])
        ),
        timeout_s=60,
    )
    # The observable end: create_chunk answered every duplicate spec, finalize_fetch the
    # ChunkDone of every chunk read again.
    reread = sum(json.loads(r)["kind"] != "done" for r in ready)
    created = wait_answered(stack, "create-chunk", creating, len(plan["chunks"]))
    finalized = wait_answered(stack, "finalize-fetch", finalizing, reread)
    assert (created["nacked"], finalized["nacked"]) == (creating["nacked"], finalizing["nacked"])
    second, generation2 = manifest_of(settings, request.destination)
    assert (second, generation2) == (first, generation)
    assert fetched_checksum(settings, second) == source_checksum(settings, request.table)


def test_rows_with_null_index_values_are_neither_lost_nor_doubled(stack, settings, retail):
    bq = clients.bigquery_client(settings)
    table = f"{settings.source_dataset}.nulls_{uuid.uuid4().hex[:6]}"
    source = f"{settings.source_dataset}.transactions"
    bq.query(
        f"CREATE TABLE `{table}` AS SELECT IF(MOD(product_id, 7) = 0, NULL, store_id) AS store_id,"
        f" IF(MOD(store_id, 3) = 0, NULL, date) AS date, product_id, units FROM `{source}`"
    ).result()
    dataset = fetch_table(
        table,
        strategy="chunk_tables",
        index_columns=["store_id", "date"],
        parallelism=5,
        settings=settings,
    )
    expected = query_checksum(settings, f"SELECT * FROM `{table}`")
    assert checksum_table(dataset.to_table()) == expected
    assert expected[0] == retail["rows"]["transactions"]


def test_resume_announces_only_unfinished_chunks_and_completes_the_run(stack, settings, retail):
    from shared.cli import main

    # Plan a chunk_tables run but deliver nothing: as if every chunk message was lost.
    from shared.fetch.library import plan_for
    from shared.fetch.resume import pending

    request = new_request(
        settings, "r", strategy="chunk_tables", index_columns=["store_id"], parallelism=3
    )
    plan_for(request, request.run_id, settings)
    assert len(pending(clients.storage_client(settings), request.destination)) == 3
    assert main(["fetch", "--resume", request.destination]) == 0
    manifest = wait_manifest(settings, request)
    assert manifest is not None
    assert fetched_checksum(settings, manifest) == source_checksum(settings, request.table)
    assert pending(clients.storage_client(settings), request.destination) == []
