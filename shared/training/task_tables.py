"""Tables a training task writes beside its shard for the merge to read: each task writes
``<output>/<stem>-<index>-of-<count>.parquet``; the merge reads every task's (the pricing
results' shards, the store slopes, the weekly history)."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
from google.cloud import storage

from shared.identifiers import GcsUri
from shared.training.dataset import Shard


def name(stem: str, shard: Shard) -> str:
    return f"{stem}-{shard.index:05d}-of-{shard.count:05d}.parquet"


def write(gcs: storage.Client, output: str, stem: str, shard: Shard, table: pa.Table) -> GcsUri:
    """The task's table under ``output``; its URI."""
    dest = GcsUri.parse(output).child(name(stem, shard))
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    gcs.bucket(dest.bucket).blob(dest.path).upload_from_string(buffer.getvalue())
    return dest


def read_all(gcs: storage.Client, output: str, stem: str, count: int) -> list[pa.Table | None]:
    """Each of the ``count`` tasks' tables, in task order; None for a task that wrote none."""
    dest = GcsUri.parse(output)
    found: list[pa.Table | None] = []
    for i in range(count):
        blob = gcs.bucket(dest.bucket).get_blob(dest.child(name(stem, Shard(i, count))).path)
        found.append(None if blob is None else pq.read_table(io.BytesIO(blob.download_as_bytes())))
    return found
