"""A training run's rows in a BigQuery results table: replaced, never appended twice."""

from __future__ import annotations

import datetime as dt
import io
import re

import pyarrow as pa
import pyarrow.parquet as pq
from google.cloud import bigquery, storage

from shared.bq_schema import bq_schema
from shared.errors import TransientError
from shared.identifiers import GcsUri, TableRef


def publish_rows(
    gcs: storage.Client,
    bq: bigquery.Client,
    rows: pa.Table,
    uri: GcsUri,
    table: str,
    run_id: str,
    run_date: dt.date,
) -> None:
    """Write ``rows`` (with their ``run_id``) and the ``run_date`` to ``uri`` as Parquet, then
    make them the run's rows of ``table`` (created partitioned by ``run_date`` if missing)."""
    merged = rows.append_column("run_date", pa.array([run_date] * rows.num_rows))
    buffer = io.BytesIO()
    pq.write_table(merged, buffer)
    blob = gcs.bucket(uri.bucket).blob(uri.path)
    blob.upload_from_string(buffer.getvalue())
    ref = TableRef.parse(table)
    schema = bq_schema(merged.schema)
    created = bigquery.Table(str(ref), schema=schema)
    created.time_partitioning = bigquery.TimePartitioning(field="run_date")
    bq.create_table(created, exists_ok=True)
    replace_run_rows(bq, ref, run_id, str(uri), int(blob.generation or 0), schema, rows.num_rows)


def replace_run_rows(
    bq: bigquery.Client,
    ref: TableRef,
    run_id: str,
    source_uri: str,
    source_generation: int,
    schema: list[bigquery.SchemaField],
    expected: int,
) -> None:
    """Replace the run's rows with the merged file's, then check the count.

    One merge per set of shard versions runs (claimed in ``pricing_job.merge_when_complete``),
    and the load job's id derives from the table and the merged file's generation, so a client
    retry of the load finds the job it already submitted instead of appending the rows twice.
    The count is checked afterwards and a mismatch fails the task loudly: nothing here hides a
    duplicate.
    """
    params = bigquery.QueryJobConfig(
        query_parameters=[bigquery.ScalarQueryParameter("run", "STRING", run_id)]
    )
    bq.query(f"DELETE FROM {ref.sql} WHERE run_id = @run", job_config=params).result()
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", f"{ref.table}_{run_id}")
    bq.load_table_from_uri(
        source_uri,
        str(ref),
        job_id=f"load_{safe}_{source_generation}",
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
            f"run {run_id}: {found} rows in {ref.sql} after the replace, {expected} expected"
        )
