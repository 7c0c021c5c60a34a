"""Reading one chunk (a read stream from an offset) into Parquet parts on GCS.

Part ``k`` of chunk ``c`` always holds rows ``[k*P, (k+1)*P)`` of the stream (P = rows per part),
whoever writes it and however often: batches are sliced at those boundaries. So a redelivered
message or a resumed read overwrites a part with the same rows under the same name, and a run
never holds two versions of the same rows.

Pipelined: while part k is encoded to Parquet and uploaded (on one writer thread; both release
the GIL), the stream goes on filling part k+1. Part k+1 is handed over only once part k is
written, so memory is bounded by about two parts, and parts land in order.

A worker near its time budget stops at the next part boundary and hands the rest on as a new
``ChunkReady`` from that offset; transient read errors are retried with backoff from the last
row received.
"""

from __future__ import annotations

import io
import random
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from google.api_core import exceptions as gexc
from google.cloud import storage
from google.cloud.bigquery_storage_v1 import BigQueryReadClient

from shared.errors import PermanentError, TransientError, is_transient
from shared.fetch.layout import RunLayout
from shared.identifiers import GcsUri
from shared.log import get_logger
from shared.messages import ChunkDone, ChunkReady, PartInfo

log = get_logger("shared.fetch.worker")


# Estimated Arrow bytes per value, by BigQuery type, when the table reports no size.
_WIDTH = {
    "BOOLEAN": 1,
    "BOOL": 1,
    "DATE": 4,
    "NUMERIC": 16,
    "BIGNUMERIC": 32,
    "STRING": 48,
    "BYTES": 48,
    "GEOGRAPHY": 128,
    "JSON": 128,
}


def row_width(fields: Sequence[Any]) -> int:
    """Estimated Arrow bytes per row of BigQuery ``SchemaField``s (nested and repeated too)."""
    total = 0
    for f in fields:
        width = row_width(f.fields) if f.field_type in ("RECORD", "STRUCT") else None
        width = width if width is not None else _WIDTH.get(f.field_type, 8)
        total += width * (4 if f.mode == "REPEATED" else 1) + 1  # + validity
    return max(total, 1)


def rows_per_part(
    fields: Sequence[Any],
    *,
    target_mb: int,
    max_rows: int,
    measured_row_bytes: float = 0.0,
    share: float = 1.0,
) -> int:
    """Rows per part so a part is about ``target_mb`` of Arrow data, at most ``max_rows``.

    ``measured_row_bytes`` (table bytes / rows, from BigQuery) times ``share`` (the selected
    columns' part of the row) wins over the schema estimate when it is larger.
    """
    width = max(row_width(fields), measured_row_bytes * share)
    return max(1, min(max_rows, int(target_mb * 2**20 // width)))


@dataclass(frozen=True)
class ChunkOutcome:
    """Either the chunk is done, or the rest is handed on from ``handoff.offset``."""

    done: ChunkDone | None = None
    handoff: ChunkReady | None = None

    @property
    def following(self) -> ChunkDone | ChunkReady:
        """The message that carries the chunk on: its completion or its hand-off."""
        out = self.done or self.handoff
        if out is None:
            raise ValueError("a chunk outcome is either done or handed off")
        return out


def write_part(bucket: storage.Bucket, uri: GcsUri, table: pa.Table) -> PartInfo:
    """Write one Parquet part (overwriting a same-named one, which holds the same rows)."""
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    blob = bucket.blob(uri.path)
    blob.upload_from_string(buffer.getvalue(), content_type="application/vnd.apache.parquet")
    return PartInfo(
        uri=str(uri),
        rows=table.num_rows,
        bytes=blob.size or 0,
        crc32c=blob.crc32c or "",
    )


class _Stream:
    """Arrow record batches of a read stream from an offset, reconnecting on transient errors."""

    def __init__(
        self,
        read_client: BigQueryReadClient,
        stream: str,
        offset: int,
        max_attempts: int,
        sleep: Callable[[float], None],
    ) -> None:
        self.read_client, self.stream, self.offset = read_client, stream, offset
        self.max_attempts, self.sleep = max_attempts, sleep
        self.schema: pa.Schema | None = None
        self.retries = 0

    def batches(self) -> Iterator[pa.RecordBatch]:
        attempt = 0
        while True:
            try:
                for response in self.read_client.read_rows(
                    self.stream, offset=self.offset, retry=None
                ):
                    if response.arrow_schema.serialized_schema:
                        self.schema = pa.ipc.read_schema(
                            pa.py_buffer(response.arrow_schema.serialized_schema)
                        )
                    if not response.row_count:
                        continue
                    if self.schema is None:
                        raise PermanentError(f"stream {self.stream} sent rows before a schema")
                    batch = pa.ipc.read_record_batch(
                        pa.py_buffer(response.arrow_record_batch.serialized_record_batch),
                        self.schema,
                    )
                    self.offset += batch.num_rows
                    attempt = 0
                    yield batch
                return
            except gexc.NotFound as exc:
                raise PermanentError(f"read stream {self.stream} is gone: {exc.message}") from None
            except Exception as exc:
                if not is_transient(exc):
                    raise
                attempt += 1
                self.retries += 1
                if attempt >= self.max_attempts:
                    raise TransientError(f"read stream {self.stream}: {exc}") from exc
                # A dropped stream (UNAVAILABLE) is resumed at once, quota refusals back off.
                first = (
                    1.0 if isinstance(exc, gexc.ResourceExhausted | gexc.TooManyRequests) else 0.05
                )
                delay = min(30.0, first * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
                log.warning(
                    "read stream interrupted at offset %d (%s); retrying in %.1fs",
                    self.offset,
                    type(exc).__name__,
                    delay,
                    extra={"stream": self.stream, "offset": self.offset, "attempt": attempt},
                )
                self.sleep(delay)


def fetch_chunk(
    message: ChunkReady,
    *,
    read_client: BigQueryReadClient,
    gcs: storage.Client,
    part_rows: int,
    time_budget_s: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    max_attempts: int = 8,
    pipelined: bool = True,
) -> ChunkOutcome:
    """Read ``message.stream`` from ``message.offset`` into parts; done, or hand on the rest.

    ``part_rows`` applies only to a message that does not carry the run's own. ``pipelined``
    encodes and uploads part k on a writer thread while part k+1 fills; without it (the
    benchmark's sequential worker) each part is written before the next is read.
    """
    part_rows = message.part_rows or part_rows
    if message.offset % part_rows:
        raise PermanentError(
            f"offset {message.offset} is not a part boundary (parts of {part_rows} rows); "
            "the message's part_rows must not change during a run"
        )
    started = clock()
    run = RunLayout.of(message.destination)
    bucket = gcs.bucket(run.bucket)
    parts = list(message.parts)
    stream = _Stream(read_client, message.stream, message.offset, max_attempts, sleep)
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    part_index = message.offset // part_rows
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="part-writer") as writer:
        in_flight: Future[PartInfo] | None = None

        def landed() -> None:
            """Wait for the part being written (its error is raised here)."""
            nonlocal in_flight
            if in_flight is not None:
                parts.append(in_flight.result())
                in_flight = None

        def flush() -> None:
            nonlocal pending, pending_rows, part_index, in_flight
            table = pa.Table.from_batches(pending, schema=stream.schema)
            landed()  # at most one part written while the next one fills
            uri = run.part(message.chunk, part_index)
            in_flight = writer.submit(write_part, bucket, uri, table)
            if not pipelined:
                landed()
            pending, pending_rows, part_index = [], 0, part_index + 1

        for batch in stream.batches():
            while batch.num_rows:
                take = min(batch.num_rows, part_rows - pending_rows)
                pending.append(batch.slice(0, take))
                pending_rows += take
                batch = batch.slice(take)
                if pending_rows == part_rows:
                    flush()
                    if clock() - started > time_budget_s:
                        # Rows already received past the boundary are read again by the next
                        # worker, which keeps every part boundary where it belongs.
                        landed()
                        handoff = message.model_copy(
                            update={"offset": part_index * part_rows, "parts": parts}
                        )
                        return ChunkOutcome(handoff=handoff)
        if pending_rows:
            flush()
        landed()
    return ChunkOutcome(
        done=ChunkDone(
            run_id=message.run_id,
            chunk=message.chunk,
            chunk_count=message.chunk_count,
            destination=message.destination,
            parts=parts,
            rows=sum(p.rows for p in parts),
        )
    )
