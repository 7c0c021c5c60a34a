"""The ``chunk_tables`` strategy: balanced ranges on index columns, one table per range.

Planning samples the index columns (``RAND() < f``, a cheap column scan), sorts the sample and
takes its quantiles as bounds, so chunks hold about the same number of rows whatever the
distribution (the old module used IN-lists of index values, which skew with the data). Bounds
are half-open and lexicographic on the index columns; rows with a NULL index go to chunk 0, so
the chunks partition the source exactly.

``create_chunk`` runs one ``CREATE TABLE ... AS SELECT`` per chunk in the temporary dataset,
named from run id and chunk, with a deterministic job id and an expiration: a redelivery finds
the job or table already there and reuses it. The chunk table is then one read stream, recorded
create-only (its ready record, :mod:`shared.fetch.layout`) so a redelivery announces the same
stream again. A table source is read ``FOR SYSTEM_TIME AS OF`` the planning time, so every
chunk sees one snapshot.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import pyarrow.compute as pc
from google.api_core import exceptions as gexc
from google.cloud import bigquery
from google.cloud.bigquery_storage_v1 import types

from shared.clients import BQ_CALL, BQ_RETRY, FetchClients
from shared.errors import InvalidRequest, PermanentError, SourceNotFound, TransientError
from shared.fetch.filters import literal, row_restriction
from shared.fetch.layout import RunLayout, read_plan
from shared.fetch.sqltext import check_select
from shared.identifiers import TableRef, quote_column
from shared.log import get_logger
from shared.messages import ChunkBounds, ChunkDone, ChunkReady, ChunkSpec, FetchRequest

log = get_logger("shared.fetch.chunks")
SAMPLE_ROWS_PER_CHUNK = 200
MIN_SAMPLE_ROWS = 20_000
TABLE_EXPIRATION_H = 24


def temp_dataset_id(project: str, temp_dataset: str) -> str:
    """``project.dataset`` of the temporary dataset (``temp_dataset`` may name its project)."""
    return temp_dataset if "." in temp_dataset else f"{project}.{temp_dataset}"


def chunk_table(temp_dataset: str, run_id: str, chunk: int) -> TableRef:
    """The chunk table of ``chunk`` in run ``run_id``: unique per run, the same on redelivery."""
    project, dataset = temp_dataset.split(".", 1)
    return TableRef(project, dataset, f"fetch_{run_id.replace('-', '_')}_{chunk:05d}")


def chunk_job_id(run_id: str, chunk: int) -> str:
    """Deterministic job id of a chunk's CTAS: a redelivered create finds the first job."""
    return f"fetch_{run_id}_{chunk:05d}"


# ----------------------------------------------------------------------------- planning


def source_sql(
    request: FetchRequest, bq: bigquery.Client, snapshot: dt.datetime
) -> tuple[str, dict[str, str], list[bigquery.SchemaField]]:
    """The source as ``SELECT ... FROM ... [WHERE ...]``, its column types and output fields.

    Checks what the request names (table, columns, filter, index columns, query shape) and
    raises a PermanentError naming the first thing that is wrong; nothing is created.
    """
    if request.table is not None:
        ref = TableRef.parse(request.table)
        try:
            table = bq.get_table(str(ref), **BQ_CALL)
        except gexc.NotFound:
            raise SourceNotFound(f"table {ref} does not exist") from None
        fields = list(table.schema)
        time_travel = (
            f" FOR SYSTEM_TIME AS OF TIMESTAMP '{snapshot.isoformat()}'"
            if table.table_type == "TABLE"
            else ""
        )
        source = f"{ref.sql}{time_travel}"
    else:
        query = check_select(request.query or "")
        try:
            probe = bq.query(f"SELECT * FROM (\n{query}\n) LIMIT 0", **BQ_CALL)
            fields = list(probe.result(retry=BQ_RETRY).schema)
        except gexc.NotFound as exc:
            raise SourceNotFound(f"query: {exc.message}") from None
        except gexc.BadRequest as exc:
            raise InvalidRequest(f"query refused: {exc.message}") from None
        source = f"(\n{query}\n)"
    types_ = {f.name: f.field_type for f in fields}
    label = f"table {request.table}" if request.table else "the query"
    for col in (request.columns or []) + request.index_columns:
        if col not in types_:
            raise SourceNotFound(f"column {col!r} does not exist in {label}")
    restriction = row_restriction(request.row_filter, types_)
    columns = ", ".join(quote_column(c) for c in request.columns) if request.columns else "*"
    where = f" WHERE {restriction}" if restriction else ""
    selected = [f for f in fields if not request.columns or f.name in request.columns]
    return f"SELECT {columns} FROM {source}{where}", types_, selected


def _sample_bounds(
    bq: bigquery.Client, select: str, index: Sequence[str], rows: int, chunks: int
) -> list[list]:
    """``chunks - 1`` quantile tuples of the index columns, from a random sample, deduplicated."""
    if not index or chunks <= 1 or rows == 0:
        return []
    wanted = max(MIN_SAMPLE_ROWS, SAMPLE_ROWS_PER_CHUNK * chunks)
    fraction = min(1.0, wanted / rows)
    cols = ", ".join(quote_column(c) for c in index)
    sample_filter = f" WHERE RAND() < {fraction!r}" if fraction < 1 else ""
    sample = (
        bq.query(f"SELECT {cols} FROM ({select}) AS s{sample_filter}", **BQ_CALL)
        .result(retry=BQ_RETRY)
        .to_arrow(create_bqstorage_client=False)
    )
    mask = None
    for col in index:
        valid = pc.is_valid(sample[col])
        mask = valid if mask is None else pc.and_(mask, valid)
    if mask is not None:
        sample = sample.filter(mask)
    if sample.num_rows == 0:
        return []
    sample = sample.take(pc.sort_indices(sample, [(c, "ascending") for c in index]))
    tuples = list(zip(*(sample[c].to_pylist() for c in index), strict=True))
    bounds: list[list] = []
    for i in range(1, chunks):
        cut = list(tuples[i * len(tuples) // chunks])
        if cut != (bounds[-1] if bounds else None) and cut != list(tuples[0]):
            bounds.append(cut)
    return bounds


def chunk_specs(
    request: FetchRequest,
    run_id: str,
    bq: bigquery.Client,
    select: str,
    rows: int,
    chunks: int,
) -> list[ChunkSpec]:
    """Split the source into at most ``chunks`` balanced half-open ranges."""
    cuts = _sample_bounds(bq, select, request.index_columns, rows, chunks)
    edges: list[list | None] = [None, *cuts, None]
    count = len(edges) - 1
    return [
        ChunkSpec(
            run_id=run_id,
            chunk=i,
            chunk_count=count,
            bounds=ChunkBounds(lower=_jsonable(edges[i]), upper=_jsonable(edges[i + 1])),
            request=request,
        )
        for i in range(count)
    ]


def _jsonable(values: list | None) -> list | None:
    if values is None:
        return None
    out = []
    for v in values:
        if isinstance(v, dt.datetime | dt.date):
            v = v.isoformat()
        elif isinstance(v, float | int | str | bool):
            pass
        else:  # NUMERIC arrives as Decimal
            v = str(v)
        out.append(v)
    return out


# ----------------------------------------------------------------------------- chunk SQL


def _lexicographic(cols: list[str], values: list[str], last: str, strict: str) -> str:
    """``(c1, .., ck) <op> (v1, .., vk)`` spelled out, as BigQuery has no row comparison."""
    terms = []
    for k in range(len(cols)):
        eq = [f"{cols[j]} = {values[j]}" for j in range(k)]
        op = last if k == len(cols) - 1 else strict
        terms.append("(" + " AND ".join([*eq, f"{cols[k]} {op} {values[k]}"]) + ")")
    return "(" + " OR ".join(terms) + ")"


def bounds_condition(bounds: ChunkBounds, index: Sequence[str], types_: dict[str, str]) -> str:
    """The WHERE condition of one chunk; chunk 0 (no lower bound) also takes NULL index rows."""
    if not index:
        return "TRUE"
    cols = [quote_column(c) for c in index]
    any_null = "(" + " OR ".join(f"{c} IS NULL" for c in cols) + ")"
    conds = []
    for values, last, strict in ((bounds.lower, ">=", ">"), (bounds.upper, "<", "<")):
        if values is None:
            continue
        if len(values) != len(index):
            raise PermanentError(f"chunk bounds {values!r} do not match index columns {index}")
        rendered = [literal(v, types_[c], c) for v, c in zip(values, index, strict=True)]
        conds.append(_lexicographic(cols, rendered, last, strict))
    if bounds.lower is None:
        return f"({any_null} OR {conds[0]})" if conds else "TRUE"
    return "(" + " AND ".join([f"NOT {any_null}", *conds]) + ")"


def ctas_sql(plan: dict, bounds: ChunkBounds, table: TableRef) -> str:
    """``CREATE TABLE <chunk> OPTIONS(expiration) AS SELECT <source> WHERE <bounds>``."""
    index = plan["request"].get("index_columns") or []
    condition = bounds_condition(bounds, index, plan["column_types"])
    return (
        f"CREATE TABLE {table.sql}\n"
        "OPTIONS (expiration_timestamp = TIMESTAMP_ADD(CURRENT_TIMESTAMP(), "
        f"INTERVAL {TABLE_EXPIRATION_H} HOUR))\n"
        f"AS SELECT * FROM ({plan['select']}) AS chunk WHERE {condition}"
    )


# ----------------------------------------------------------------------------- create_chunk


def _load_ready(record: dict) -> ChunkReady | ChunkDone:
    model = ChunkDone if record["kind"] == "done" else ChunkReady
    return model.model_validate(record["message"])


def _run_ctas(bq: bigquery.Client, sql: str, job_id: str, table: TableRef) -> bigquery.Table:
    """Run the chunk's CTAS once; a redelivery waits for the first job and reuses its table."""
    try:
        bq.query(sql, job_id=job_id, job_retry=None, **BQ_CALL).result(retry=BQ_RETRY)
    except gexc.Conflict:
        # The job id (or the table) exists: an earlier delivery ran it. Wait for that job.
        try:
            job = bq.get_job(job_id, **BQ_CALL)
            if job.state != "DONE":
                job.result(retry=BQ_RETRY)
        except gexc.GoogleAPICallError as exc:
            log.warning("earlier chunk job %s: %s", job_id, exc, extra={"job_id": job_id})
    except (gexc.TooManyRequests, gexc.ServiceUnavailable, gexc.InternalServerError) as exc:
        raise TransientError(f"chunk job {job_id}: {exc}") from exc
    except gexc.BadRequest as exc:
        raise InvalidRequest(f"chunk job {job_id} refused: {exc.message}") from None
    try:
        return bq.get_table(str(table), **BQ_CALL)
    except gexc.NotFound:
        raise TransientError(f"chunk table {table} not there after job {job_id}") from None


def create_chunk(spec: ChunkSpec, clients: FetchClients) -> ChunkReady | ChunkDone:
    """Materialise one chunk as a table and announce it as one read stream (or as done if empty)."""
    bq, gcs = clients.bq, clients.gcs
    run = RunLayout.of(spec.request.destination)
    bucket = gcs.bucket(run.bucket)
    blob = bucket.blob(run.ready_record(spec.chunk).path)
    try:
        return _load_ready(json.loads(blob.download_as_bytes()))
    except gexc.NotFound:
        pass
    plan = read_plan(gcs, spec.request.destination)
    if plan is None or plan.get("run_id") != spec.run_id:
        raise PermanentError(f"run {spec.run_id}: no plan at {run.dest}")
    table_ref = chunk_table(plan["temp_dataset"], spec.run_id, spec.chunk)
    job_id = chunk_job_id(spec.run_id, spec.chunk)
    table = _run_ctas(bq, ctas_sql(plan, spec.bounds, table_ref), job_id, table_ref)
    session = clients.read_client.create_read_session(
        parent=f"projects/{clients.billing_project}",
        read_session=types.ReadSession(
            table=table_ref.storage_path,
            data_format=types.DataFormat.ARROW,
            read_options=types.ReadSession.TableReadOptions(
                arrow_serialization_options=types.ArrowSerializationOptions(
                    buffer_compression=types.ArrowSerializationOptions.CompressionCodec.LZ4_FRAME
                )
            ),
        ),
        max_stream_count=1,
    )
    common: dict[str, Any] = {
        "run_id": spec.run_id,
        "chunk": spec.chunk,
        "chunk_count": spec.chunk_count,
        "destination": spec.request.destination,
    }
    out: ChunkReady | ChunkDone
    if session.streams:
        out = ChunkReady(
            **common,
            stream=session.streams[0].name,
            temp_table=str(table_ref),
            part_rows=plan.get("part_rows"),
        )
    else:  # an empty chunk table has no stream to read
        out = ChunkDone(**common, parts=[], rows=0)
    log.info(
        "chunk %d of %s: table %s, %s rows",
        spec.chunk,
        spec.run_id,
        table_ref,
        table.num_rows,
        extra={"run_id": spec.run_id, "chunk": spec.chunk, "job_id": job_id},
    )
    record = {
        "kind": "ready" if isinstance(out, ChunkReady) else "done",
        "message": out.model_dump(mode="json", exclude_none=True),
    }
    try:
        blob.upload_from_string(
            json.dumps(record),
            content_type="application/json",
            if_generation_match=0,
        )
    except gexc.PreconditionFailed:
        return _load_ready(json.loads(blob.download_as_bytes()))
    return out


def drop_chunk_tables(bq: bigquery.Client, plan: dict) -> int:
    """Delete a finished run's chunk tables (expiration catches any this misses)."""
    if plan.get("strategy") != "chunk_tables":
        return 0
    for i in range(len(plan["chunks"])):
        table = chunk_table(plan["temp_dataset"], plan["run_id"], i)
        bq.delete_table(str(table), not_found_ok=True, **BQ_CALL)
    return len(plan["chunks"])


def check_temp_dataset(bq: bigquery.Client, temp_dataset: str) -> None:
    """The temporary dataset must exist (Terraform creates it with a default expiration)."""
    try:
        bq.get_dataset(temp_dataset, **BQ_CALL)
    except gexc.NotFound:
        raise InvalidRequest(
            f"temporary dataset {temp_dataset} does not exist; it is created by infra/ "
            "(or RETAIL_TEMP_DATASET names another)"
        ) from None
