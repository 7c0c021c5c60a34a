"""Load a generated retailer into BigQuery: Parquet parts to GCS, then one load job per table.

Transactions stream through in parts of bounded size (memory stays flat whatever the row
count); the table is partitioned by day on ``date`` and clustered by store and product, the
layout the fetch and training jobs read best.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq
from google.api_core import exceptions as gexc
from google.cloud import bigquery, storage

from shared.bq_schema import bq_schema
from shared.synthetic.generate import TRANSACTIONS_SCHEMA, World, transactions


@dataclass(frozen=True)
class LoadReport:
    """What was loaded and how long it took."""

    dataset: str
    rows: dict[str, int]
    generate_s: float
    load_s: float


def _upload_parquet(bucket: storage.Bucket, name: str, table: pa.Table) -> str:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    bucket.blob(name).upload_from_string(buffer.getvalue(), content_type="application/octet-stream")
    return f"gs://{bucket.name}/{name}"


def _load(
    bq: bigquery.Client,
    table_id: str,
    uris: list[str],
    schema: pa.Schema,
    partition_by: str | None = None,
    cluster_by: list[str] | None = None,
) -> int:
    config = bigquery.LoadJobConfig(
        source_format=bigquery.SourceFormat.PARQUET,
        schema=bq_schema(schema),
        write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
    )
    if partition_by:
        config.time_partitioning = bigquery.TimePartitioning(field=partition_by)
    if cluster_by:
        config.clustering_fields = cluster_by
    bq.load_table_from_uri(uris, table_id, job_config=config).result(timeout=3600)
    return bq.get_table(table_id).num_rows


def parts(batches: Iterable[pa.RecordBatch], part_rows: int) -> Iterable[list[pa.RecordBatch]]:
    """Group record batches into parts of at most about ``part_rows`` rows."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        pending.append(batch)
        count += batch.num_rows
        if count >= part_rows:
            yield pending
            pending, count = [], 0
    if pending:
        yield pending


def load_world(
    world: World,
    *,
    dataset: str,
    bq: bigquery.Client,
    gcs: storage.Client,
    bucket: str,
    part_rows: int = 500_000,
    on_rows: Callable[[int], None] = lambda n: None,
) -> LoadReport:
    """Write every table of ``world`` into ``dataset``, replacing what was there."""
    ds = bigquery.Dataset(f"{bq.project}.{dataset}")
    with contextlib.suppress(gexc.Conflict):
        bq.create_dataset(ds)
    gcs_bucket = gcs.bucket(bucket)
    prefix = f"synthetic/{dataset}"
    rows: dict[str, int] = {}
    t0 = time.perf_counter()
    load_s = 0.0
    for name, table in (
        ("stores", world.stores),
        ("products", world.products),
        ("promotions", world.promotions),
        ("product_truth", world.truth),
    ):
        uri = _upload_parquet(gcs_bucket, f"{prefix}/{name}/part-00000.parquet", table)
        t1 = time.perf_counter()
        rows[name] = _load(bq, f"{bq.project}.{dataset}.{name}", [uri], table.schema)
        load_s += time.perf_counter() - t1

    uris = []
    for i, group in enumerate(parts(transactions(world), part_rows)):
        table = pa.Table.from_batches(group)
        uris.append(
            _upload_parquet(gcs_bucket, f"{prefix}/transactions/part-{i:05d}.parquet", table)
        )
        on_rows(table.num_rows)
        del table, group
    t1 = time.perf_counter()
    rows["transactions"] = _load(
        bq,
        f"{bq.project}.{dataset}.transactions",
        uris,
        TRANSACTIONS_SCHEMA,
        partition_by="date",
        cluster_by=["store_id", "product_id"],
    )
    load_s += time.perf_counter() - t1
    return LoadReport(dataset, rows, time.perf_counter() - t0 - load_s, load_s)
