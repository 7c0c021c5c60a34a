"""Planning a fetch: check the request against the source, split it into chunks.

``plan_fetch`` dispatches on the request's strategy. ``chunk_tables`` lives in
:mod:`shared.fetch.chunks`; its plan lists ``ChunkSpec`` messages for ``create_chunk``.

``streams`` strategy: one Storage Read API session on a snapshot of the table, split into N
streams; each stream is a chunk. The plan is written create-only (named by
:mod:`shared.fetch.layout`) before any chunk is announced, so a redelivered request announces
the *same* streams again instead of a second, differently split session (which would duplicate
rows).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass

from google.api_core import exceptions as gexc
from google.cloud import bigquery, storage
from google.cloud.bigquery_storage_v1 import types

from shared.clients import BQ_CALL, BQ_RETRY, FetchClients
from shared.errors import InvalidRequest, SourceNotFound, TransientError
from shared.fetch import chunks as chunk_tables
from shared.fetch.filters import row_restriction
from shared.fetch.layout import RunLayout, read_json, read_plan
from shared.fetch.worker import row_width, rows_per_part
from shared.identifiers import GcsUri, TableRef
from shared.log import get_logger
from shared.messages import ChunkDone, ChunkReady, ChunkSpec, FetchRequest
from shared.settings import FetchLimits

log = get_logger("shared.fetch.plan")
__all__ = ["Plan", "check_request", "plan_fetch", "read_plan", "run_id_for"]


@dataclass(frozen=True)
class Plan:
    """What ``plan_fetch`` decided: one message per chunk, and whether the plan was new.

    ``streams`` plans hold ``ChunkReady`` messages (for ``fetch_chunk``), ``chunk_tables``
    plans ``ChunkSpec`` messages (for ``create_chunk``). A filter that matches no rows leaves
    no stream to read: the plan is then one empty ``ChunkDone``, so the run still completes
    (with 0 rows) through ``finalize_fetch``.
    """

    run_id: str
    table: str
    strategy: str
    snapshot_time: str
    estimated_rows: int
    chunks: list[ChunkReady] | list[ChunkSpec] | list[ChunkDone]
    reused: bool = False


def run_id_for(request: FetchRequest, message_id: str) -> str:
    """The request's run id, or one derived from the Pub/Sub message id (stable on redelivery)."""
    return request.run_id or f"r{message_id}".lower()


def column_types(table: bigquery.Table) -> dict[str, str]:
    """Top-level column name -> BigQuery type."""
    return {f.name: f.field_type for f in table.schema}


def check_columns(request: FetchRequest, table: bigquery.Table) -> None:
    """Every column the request names must exist; the error names the first that does not."""
    known = column_types(table)
    for col in (request.columns or []) + request.index_columns:
        if col not in known:
            raise SourceNotFound(f"column {col!r} does not exist in table {request.table}")


def check_source(
    request: FetchRequest, bq: bigquery.Client
) -> tuple[TableRef, bigquery.Table, str]:
    """Check the request against the source: table, columns and filter; nothing is created.

    Returns the table and the rendered row restriction; raises a PermanentError naming what
    is missing or wrong. The CLI calls this before publishing, so a typo fails at once.
    """
    if request.table is None:
        raise InvalidRequest("a query source needs strategy 'chunk_tables'")
    ref = TableRef.parse(request.table)
    try:
        table = bq.get_table(str(ref), **BQ_CALL)
    except gexc.NotFound:
        raise SourceNotFound(f"table {ref} does not exist") from None
    if table.table_type != "TABLE":
        raise InvalidRequest(
            f"{ref} is a {table.table_type.lower()}; the Storage Read API reads tables only, "
            "use strategy 'chunk_tables'"
        )
    check_columns(request, table)
    return ref, table, row_restriction(request.row_filter, column_types(table))


def check_request(request: FetchRequest, bq: bigquery.Client) -> None:
    """Check a request of either strategy against its source; nothing is created."""
    if request.strategy == "chunk_tables":
        chunk_tables.source_sql(request, bq, dt.datetime.now(dt.UTC))
    else:
        check_source(request, bq)


def count_rows(bq: bigquery.Client, ref: TableRef, restriction: str, table: bigquery.Table) -> int:
    """Rows the fetch must deliver: table metadata without a filter (free), else a COUNT."""
    if not restriction:
        return int(table.num_rows or 0)
    sql = f"SELECT COUNT(*) AS n FROM {ref.sql} WHERE {restriction}"
    return int(next(iter(bq.query(sql, **BQ_CALL).result(retry=BQ_RETRY)))["n"])


def _read_plan(bucket: storage.Bucket, dest: GcsUri) -> dict | None:
    return read_json(bucket, RunLayout(dest).plan.path)


def _schema(fields: list[bigquery.SchemaField]) -> list[dict]:
    return [{"name": f.name, "type": f.field_type, "mode": f.mode} for f in fields]


def _plan_from_record(record: dict, reused: bool) -> Plan:
    strategy = record.get("strategy", "streams")
    chunks: list[ChunkSpec] | list[ChunkReady] | list[ChunkDone]
    if any("rows" in c and "stream" not in c for c in record["chunks"]):  # an empty run
        chunks = [ChunkDone.model_validate(c) for c in record["chunks"]]
    elif strategy == "chunk_tables":
        chunks = [ChunkSpec.model_validate(c) for c in record["chunks"]]
    else:
        chunks = [ChunkReady.model_validate(c) for c in record["chunks"]]
    return Plan(
        run_id=record["run_id"],
        table=record["table"],
        strategy=strategy,
        snapshot_time=record["snapshot_time"],
        estimated_rows=record["estimated_rows"],
        chunks=chunks,
        reused=reused,
    )


def _recorded(bucket: storage.Bucket, dest: GcsUri, run_id: str) -> Plan | None:
    """The plan already recorded at ``dest`` for ``run_id``; another run's plan is an error."""
    existing = _read_plan(bucket, dest)
    if existing is None:
        return None
    if existing.get("run_id") != run_id:
        raise InvalidRequest(
            f"destination {dest} already holds run {existing.get('run_id')!r}; "
            "choose an empty destination"
        )
    return _plan_from_record(existing, reused=True)


_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}")


def check_destination(
    destination: str, allowed: tuple[str, ...] | list[str], gcs: storage.Client | None = None
) -> GcsUri:
    """The destination, refused unless it lies strictly below an allowed ``gs://bucket/prefix``
    and, with ``gcs``, neither lies inside another run's destination nor holds any object:
    checked before anything is written, so a run can never overwrite or delete another's."""
    if any(ch in destination for ch in "\\%?#*[]") or any(ord(ch) < 0x20 for ch in destination):
        raise InvalidRequest(
            f"destination {destination!r}: backslashes, percent-encoding, wildcards and "
            "control characters are not allowed"
        )
    # A name that looks like another run's (a trailing space, a zero-width space, a combining
    # accent, fullwidth dots, "//") would be a second run beside it, mixed up by whoever reads
    # by the displayed name or by prefix: only plain ASCII segments.
    path = destination.removeprefix("gs://").partition("/")[2]
    bad = [s for s in path.split("/") if not _SEGMENT.fullmatch(s)] if path else []
    if not destination.isascii() or bad or destination.endswith("/"):
        raise InvalidRequest(
            f"destination {destination!r}: each path segment must be plain ASCII letters, "
            "digits, '.', '_' or '-' (not starting with '.'), with no empty segment"
        )
    try:
        dest = GcsUri.parse(destination)
    except ValueError as exc:
        raise InvalidRequest(f"destination: {exc}") from None
    roots = [GcsUri.parse(a) for a in allowed]
    root = next(
        (r for r in roots if r.bucket == dest.bucket
         and dest.path.startswith(f"{r.path}/" if r.path else "") and dest.path != r.path),
        None,
    )  # fmt: skip
    if root is None:
        where = ", ".join(f"{r}/" for r in roots)
        raise InvalidRequest(f"destination {dest} is not below an allowed prefix ({where})")
    if gcs is None:
        return dest
    bucket = gcs.bucket(dest.bucket)
    parts = dest.path.split("/")
    top = len(root.path.split("/")) if root.path else 0
    for n in range(top + 1, len(parts)):
        ancestor = "/".join(parts[:n])
        if bucket.blob(RunLayout.plan_of(ancestor)).exists():
            raise InvalidRequest(
                f"destination {dest} lies inside another run's destination gs://{dest.bucket}/"
                f"{ancestor}"
            )
    try:
        inside = [
            b.name for b in gcs.list_blobs(dest.bucket, prefix=f"{dest.path}/", max_results=3)
        ]
    except gexc.NotFound:
        raise InvalidRequest(f"destination bucket {dest.bucket!r} does not exist") from None
    foreign = [n for n in inside if not RunLayout.before_plan(n)]
    if foreign:
        raise InvalidRequest(
            f"destination {dest} already holds objects (e.g. {foreign[0]}); choose an empty one"
        )
    return dest


def _claim(bucket: storage.Bucket, dest: GcsUri, run_id: str, record: dict) -> Plan:
    """Write ``record`` create-only; if a concurrent delivery won, return its plan instead."""
    blob = bucket.blob(RunLayout(dest).plan.path)
    try:
        blob.upload_from_string(
            json.dumps(record, indent=1), content_type="application/json", if_generation_match=0
        )
    except gexc.NotFound:
        raise InvalidRequest(f"destination bucket {dest.bucket!r} does not exist") from None
    except gexc.PreconditionFailed:
        winner = _read_plan(bucket, dest)
        if winner is None or winner.get("run_id") != run_id:
            raise InvalidRequest(f"destination {dest} was claimed by another run") from None
        return _plan_from_record(winner, reused=True)
    return _plan_from_record(record, reused=False)


def plan_fetch(
    request: FetchRequest,
    run_id: str,
    *,
    clients: FetchClients,
    limits: FetchLimits,
    temp_dataset: str,
    allowed_destinations: tuple[str, ...] | None = None,
) -> Plan:
    """Plan a fetch with the request's strategy, or return the plan recorded for this run.

    With ``allowed_destinations``, a new run's destination is checked first
    (:func:`check_destination`)."""
    gcs = clients.gcs
    dest = GcsUri.parse(request.destination)
    if allowed_destinations is not None:
        check_destination(request.destination, allowed_destinations)
    existing = _recorded(gcs.bucket(dest.bucket), dest, run_id)
    if existing is not None:  # a redelivery: the plan recorded for this run
        return existing
    if allowed_destinations is not None:
        check_destination(request.destination, allowed_destinations, gcs)
    if request.strategy == "chunk_tables":
        temp = chunk_tables.temp_dataset_id(clients.billing_project, temp_dataset)
        return plan_chunk_tables(request, run_id, clients=clients, limits=limits, temp_dataset=temp)
    return plan_streams(request, run_id, clients=clients, limits=limits)


def plan_chunk_tables(
    request: FetchRequest,
    run_id: str,
    *,
    clients: FetchClients,
    limits: FetchLimits,
    temp_dataset: str,
) -> Plan:
    """Plan a ``chunk_tables`` fetch: balanced bounds, one ``ChunkSpec`` per chunk (a plan
    already recorded for the run is returned by :func:`plan_fetch` before this runs)."""
    bq = clients.bq
    dest = GcsUri.parse(request.destination)
    bucket = clients.gcs.bucket(dest.bucket)
    snapshot = dt.datetime.now(dt.UTC)
    select, types_, fields = chunk_tables.source_sql(request, bq, snapshot)
    chunk_tables.check_temp_dataset(bq, temp_dataset)
    counted = bq.query(f"SELECT COUNT(*) AS n FROM ({select})", **BQ_CALL)
    source_rows = int(next(iter(counted.result(retry=BQ_RETRY)))[0])
    specs = chunk_tables.chunk_specs(
        request, run_id, bq, select, source_rows, min(request.parallelism, limits.max_streams)
    )
    record = {
        "run_id": run_id,
        "strategy": "chunk_tables",
        "table": request.table or "query",
        "request": request.model_dump(mode="json", exclude_none=True),
        "snapshot_time": snapshot.isoformat(),
        "estimated_rows": source_rows,
        "source_rows": source_rows,
        "select": select,
        "column_types": types_,
        "temp_dataset": temp_dataset,
        "schema": _schema(fields),
        "part_rows": rows_per_part(
            fields, target_mb=limits.part_target_mb, max_rows=limits.part_max_rows
        ),
        "chunks": [c.model_dump(mode="json", exclude_none=True) for c in specs],
    }
    return _claim(bucket, dest, run_id, record)


def plan_streams(
    request: FetchRequest,
    run_id: str,
    *,
    clients: FetchClients,
    limits: FetchLimits,
) -> Plan:
    """Plan a ``streams`` fetch (a plan already recorded for the run is returned by
    :func:`plan_fetch` before this runs)."""
    if request.strategy != "streams":
        raise InvalidRequest(f"plan_streams got a {request.strategy!r} request")
    bq = clients.bq
    dest = GcsUri.parse(request.destination)
    bucket = clients.gcs.bucket(dest.bucket)

    ref, table, restriction = check_source(request, bq)
    source_rows = count_rows(bq, ref, restriction, table)

    snapshot = dt.datetime.now(dt.UTC).replace(microsecond=0)
    session = types.ReadSession(
        table=ref.storage_path,
        data_format=types.DataFormat.ARROW,
        read_options=types.ReadSession.TableReadOptions(
            selected_fields=list(request.columns or []),
            row_restriction=restriction,
            arrow_serialization_options=types.ArrowSerializationOptions(
                buffer_compression=types.ArrowSerializationOptions.CompressionCodec.LZ4_FRAME
            ),
        ),
        table_modifiers=types.ReadSession.TableModifiers(snapshot_time=snapshot),
    )
    try:
        session = clients.read_client.create_read_session(
            parent=f"projects/{clients.billing_project}",
            read_session=session,
            max_stream_count=min(request.parallelism, limits.max_streams),
        )
    except (gexc.TooManyRequests, gexc.ResourceExhausted, gexc.ServiceUnavailable) as exc:
        raise TransientError(f"read session for {ref}: {exc}") from exc
    except gexc.BadRequest as exc:
        raise InvalidRequest(f"read session for {ref} refused: {exc.message}") from None

    selected = [f for f in table.schema if not request.columns or f.name in request.columns]
    part_rows = rows_per_part(
        selected,
        target_mb=limits.part_target_mb,
        max_rows=limits.part_max_rows,
        measured_row_bytes=(table.num_bytes or 0) / max(1, table.num_rows or 0),
        share=row_width(selected) / row_width(table.schema),
    )
    streams = [s.name for s in session.streams]
    chunks: list[ChunkReady] | list[ChunkDone] = [
        ChunkReady(
            run_id=run_id,
            chunk=i,
            chunk_count=len(streams),
            stream=name,
            destination=str(dest),
            part_rows=part_rows,
        )
        for i, name in enumerate(streams)
    ]
    if not streams:  # nothing matches: a complete run of 0 rows, not one that never ends
        chunks = [ChunkDone(run_id=run_id, chunk=0, chunk_count=1, destination=str(dest),
                            parts=[], rows=0)]  # fmt: skip
    record = {
        "run_id": run_id,
        "strategy": "streams",
        "table": str(ref),
        "request": request.model_dump(mode="json", exclude_none=True),
        "session": session.name,
        "snapshot_time": snapshot.isoformat(),
        "estimated_rows": int(session.estimated_row_count or table.num_rows or 0),
        "source_rows": source_rows,
        "schema": _schema(selected),
        "part_rows": part_rows,
        "chunks": [c.model_dump(mode="json", exclude_none=True) for c in chunks],
    }
    return _claim(bucket, dest, run_id, record)
