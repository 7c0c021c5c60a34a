"""The pricing job as Cloud Run tasks: each task fits its shard of products on a process pool
and writes one deterministic shard file; a final merge loads the results into BigQuery (the
run's rows replaced, never appended twice) and writes the encrypted model artifact.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import multiprocessing
import os
import re
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from google.api_core import exceptions as gexc
from google.cloud import bigquery, storage

from shared.errors import TransientError
from shared.identifiers import GcsUri, TableRef
from shared.log import get_logger
from shared.synthetic.load import bq_schema
from shared.training.artifacts import Keyring, publish
from shared.training.dataset import BadInput, Shard, load_manifest, read_shard
from shared.training.pricing import PriceResult, fit_products
from shared.training.promotions_job import latest_scores
from shared.training.report import render

log = get_logger("shared.training.pricing_job")
COLUMNS = ["date", "store_id", "product_id", "units", "revenue", "promo_id", "feature", "display"]
RESULT_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("product_id", pa.int64()),
        ("status", pa.string()),
        ("n_cells", pa.int64()),
        ("elasticity", pa.float64()),
        ("ci_low", pa.float64()),
        ("ci_high", pa.float64()),
        ("std_error", pa.float64()),
        ("r2", pa.float64()),
        ("price_variation", pa.float64()),
        ("current_price", pa.float64()),
        ("recommended_price", pa.float64()),
        ("expected_revenue_change", pa.float64()),
        ("margin_price", pa.float64()),
        ("returns_rows", pa.int64()),
    ]
)


def shard_name(shard: Shard) -> str:
    return f"shard-{shard.index:05d}-of-{shard.count:05d}.parquet"


# The shard's table, inherited by forked workers instead of being pickled to each of them.
_SHARD: pa.Table | None = None


def _fit_group(products: np.ndarray) -> list[PriceResult]:
    assert _SHARD is not None
    return fit_products(_SHARD.filter(pc.is_in(_SHARD["product_id"], pa.array(products))))


def fit_in_pool(table: pa.Table, workers: int) -> list[PriceResult]:
    """Fit every product of ``table``, products split across ``workers`` processes."""
    if table.num_rows == 0:
        return []
    products, rows = np.unique(table["product_id"].to_numpy(), return_counts=True)
    if workers <= 1 or len(products) < 2:
        return fit_products(table)
    # Balance by rows, not product count: a few products hold most of the sales.
    workers = min(workers, len(products))
    load = np.zeros(workers)
    assigned: list[list[int]] = [[] for _ in range(workers)]
    for i in np.argsort(-rows, kind="stable"):
        target = int(np.argmin(load))
        assigned[target].append(int(products[i]))
        load[target] += rows[i]
    groups = [np.array(g) for g in assigned]
    global _SHARD
    _SHARD = table
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            parts = list(pool.map(_fit_group, groups))
    finally:
        _SHARD = None
    return sorted((r for part in parts for r in part), key=lambda r: r.product_id)


def run_task(
    manifest_uri: str,
    run_id: str,
    shard: Shard,
    output: str,
    *,
    gcs: storage.Client,
    filesystem: object,
    workers: int | None = None,
) -> str:
    """One task: read the shard, fit, write ``<output>/<shard file>``; returns its URI."""
    manifest = load_manifest(gcs, manifest_uri)
    table = read_shard(manifest, shard, filesystem, columns=COLUMNS)
    results = fit_in_pool(table, workers or os.cpu_count() or 1)
    rows = [{"run_id": run_id, **r.row()} for r in results]
    out = pa.Table.from_pylist(rows, schema=RESULT_SCHEMA)
    buffer = io.BytesIO()
    pq.write_table(out, buffer)
    dest = GcsUri.parse(output).child(shard_name(shard))
    gcs.bucket(dest.bucket).blob(dest.path).upload_from_string(buffer.getvalue())
    log.info(
        "pricing shard %d/%d: %d products",
        shard.index,
        shard.count,
        len(results),
        extra={"run_id": run_id, "task_index": shard.index, "products": len(results)},
    )
    return str(dest)


def _replace_run_rows(
    bq: bigquery.Client,
    ref: TableRef,
    run_id: str,
    source_uri: str,
    source_generation: int,
    schema: list[bigquery.SchemaField],
    expected: int,
) -> None:
    """Replace the run's rows with the merged file's, then check the count.

    One merge per set of shard versions runs (claimed in :func:`merge_when_complete`), and the
    load job's id derives from the merged file's generation, so a client retry of the load
    finds the job it already submitted instead of appending the rows twice. The count is
    checked afterwards and a mismatch fails the task loudly: nothing here hides a duplicate.
    """
    params = bigquery.QueryJobConfig(
        query_parameters=[bigquery.ScalarQueryParameter("run", "STRING", run_id)]
    )
    bq.query(f"DELETE FROM {ref.sql} WHERE run_id = @run", job_config=params).result()
    safe_run = re.sub(r"[^A-Za-z0-9_-]", "_", run_id)
    bq.load_table_from_uri(
        source_uri,
        str(ref),
        job_id=f"pricing_load_{safe_run}_{source_generation}",
        job_config=bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            schema=schema,
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
        ),
    ).result()
    count = f"SELECT COUNT(*) AS n FROM {ref.sql} WHERE run_id = @run"
    found = next(iter(bq.query(count, job_config=params).result()))["n"]
    if found != expected:
        raise TransientError(
            f"pricing run {run_id}: {found} rows in {ref.sql} after the replace, "
            f"{expected} expected"
        )


def merge(
    run_id: str,
    output: str,
    task_count: int,
    *,
    gcs: storage.Client,
    bq: bigquery.Client,
    results_table: str,
    artifact_uri: str,
    keyring: Keyring,
) -> pa.Table:
    """Collect every shard (all must be there), replace the run's rows, write the artifact."""
    dest = GcsUri.parse(output)
    tables = []
    for i in range(task_count):
        blob = gcs.bucket(dest.bucket).get_blob(dest.child(shard_name(Shard(i, task_count))).path)
        if blob is None:
            raise BadInput(f"pricing run {run_id}: shard {i} of {task_count} is missing")
        tables.append(pq.read_table(io.BytesIO(blob.download_as_bytes())))
    results = pa.concat_tables(tables).sort_by("product_id")
    run_date = dt.datetime.now(dt.UTC).date()
    merged = results.append_column("run_date", pa.array([run_date] * results.num_rows))
    merged_uri = dest.child("_merged.parquet")
    buffer = io.BytesIO()
    pq.write_table(merged, buffer)
    merged_blob = gcs.bucket(merged_uri.bucket).blob(merged_uri.path)
    merged_blob.upload_from_string(buffer.getvalue())
    ref = TableRef.parse(results_table)
    schema = bq_schema(merged.schema)
    table = bigquery.Table(str(ref), schema=schema)
    table.time_partitioning = bigquery.TimePartitioning(field="run_date")
    bq.create_table(table, exists_ok=True)
    _replace_run_rows(
        bq,
        ref,
        run_id,
        str(merged_uri),
        int(merged_blob.generation or 0),
        schema,
        expected=results.num_rows,
    )
    products = results.to_pylist()
    artifact = {"kind": "pricing", "run_id": run_id, "products": products}
    # The serving API polls the pointer and swaps to the new model when it changes.
    publish(gcs, artifact_uri, json.dumps(artifact).encode(), keyring)
    # The report shows the newest promotion model's scores beside this run's prices.
    page = render(run_id, products, latest_scores(gcs, artifact_uri.rsplit("/", 2)[0]))
    report = dest.child("report.html")
    gcs.bucket(report.bucket).blob(report.path).upload_from_string(page, content_type="text/html")
    return results


def merge_when_complete(
    run_id: str,
    output: str,
    task_count: int,
    *,
    gcs: storage.Client,
    **merge_kwargs: Any,
) -> bool:
    """Called by every task after its shard: the task that sees all shards merges.

    The set of shard versions is claimed create-only (``_merges/<digest>``), so two tasks that
    finish together do not both merge the same shards; a rerun task writes a new version of
    its shard, hence a new digest, and its merge replaces the run's rows again.
    """
    dest = GcsUri.parse(output)
    bucket = gcs.bucket(dest.bucket)
    versions = []
    for i in range(task_count):
        blob = bucket.get_blob(dest.child(shard_name(Shard(i, task_count))).path)
        if blob is None:
            return False
        versions.append(f"{blob.name}:{blob.generation}")
    digest = hashlib.sha256("\n".join(versions).encode()).hexdigest()[:16]
    try:
        bucket.blob(dest.child(f"_merges/{digest}").path).upload_from_string(
            b"", if_generation_match=0
        )
    except gexc.PreconditionFailed:
        return False
    merge(run_id, output, task_count, gcs=gcs, **merge_kwargs)
    return True
