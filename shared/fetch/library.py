"""Fast fetch as a library: ``fetch_table(...)`` -> ``pyarrow.dataset.Dataset``.

Runs the same stages as the Pub/Sub pipeline (plan, read chunks, finalize) in this process
with a thread pool, for callers who want data now and no messaging. Reading is gRPC, Arrow
decoding and Parquet encoding, which all release the GIL, so threads use every core.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Literal
from urllib.parse import urlparse

import pyarrow.dataset as pads
import pyarrow.fs as pafs

from shared import clients, topology
from shared.errors import RunFailed, RunStalled
from shared.fetch import runs
from shared.fetch.chunks import create_chunk
from shared.fetch.finalize import finalize
from shared.fetch.plan import Plan, plan_fetch
from shared.fetch.worker import fetch_chunk
from shared.messages import ChunkDone, ChunkReady, ChunkSpec, FetchRequest, Predicate, dump
from shared.settings import Settings


def new_run_id(prefix: str = "lib") -> str:
    """A fresh, sortable run id."""
    return f"{prefix}-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


def plan_for(request: FetchRequest, run_id: str, settings: Settings) -> Plan:
    """``plan_fetch`` with the limits and (cached) clients of ``settings``."""
    return plan_fetch(
        request,
        run_id,
        clients=clients.FetchClients.of(settings),
        limits=settings.limits,
        temp_dataset=settings.temp_dataset,
        allowed_destinations=settings.fetch_destinations,
    )


def run_in_process(
    request: FetchRequest,
    settings: Settings,
    *,
    workers: int | None = None,
    on_rows: Callable[[int], None] = lambda n: None,
    pipelined: bool = True,
) -> dict:
    """Plan, create and read every chunk on a thread pool, finalize; returns the manifest.

    ``pipelined=False`` runs the sequential worker (the benchmark shows it beside)."""
    run_id = request.run_id or new_run_id()
    gcs = clients.storage_client(settings)
    bq = clients.bigquery_client(settings)
    read_client = clients.bigquery_read_client(settings)
    plan = plan_for(request, run_id, settings)

    def step(message: ChunkSpec | ChunkReady | ChunkDone) -> ChunkSpec | ChunkReady | ChunkDone:
        """One stage of one chunk, as the functions would run it; returns the next message."""
        if isinstance(message, ChunkDone):  # an empty run's one chunk
            return message
        if isinstance(message, ChunkSpec):
            return create_chunk(message, clients.FetchClients.of(settings))
        outcome = fetch_chunk(
            message,
            read_client=read_client,
            gcs=gcs,
            part_rows=settings.part_max_rows,
            time_budget_s=settings.time_budget_s,
            pipelined=pipelined,
        )
        following = outcome.following
        on_rows(sum(p.rows for p in following.parts[len(message.parts) :]))
        return following

    manifest: dict | None = None
    with ThreadPoolExecutor(max_workers=workers or max(1, len(plan.chunks))) as pool:
        pending: set[Future] = {pool.submit(step, chunk) for chunk in plan.chunks}
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                following = future.result()
                if not isinstance(following, ChunkDone):
                    pending.add(pool.submit(step, following))
                    continue
                result = finalize(following, gcs=gcs, bq=bq)
                if result.complete is not None:
                    manifest = {"uri": result.complete.manifest_uri, **result.complete.model_dump()}
    if manifest is None:
        raise RuntimeError(f"run {run_id} finished without a manifest")
    return manifest


def gcs_filesystem(settings: Settings) -> pafs.GcsFileSystem:
    """Arrow's GCS filesystem, pointed at the emulator when there is one."""
    if settings.storage_emulator_host:
        url = urlparse(settings.storage_emulator_host)
        return pafs.GcsFileSystem(
            anonymous=True, endpoint_override=url.netloc, scheme=url.scheme or "http"
        )
    return pafs.GcsFileSystem()


def dataset_from_manifest(manifest: dict, settings: Settings) -> pads.Dataset:
    """The run's parts as one Arrow dataset, in manifest order."""
    paths = [part["uri"].removeprefix("gs://") for part in manifest["parts"]]
    return pads.dataset(paths, format="parquet", filesystem=gcs_filesystem(settings))


def fetch_table(
    table: str | None = None,
    *,
    query: str | None = None,
    columns: Sequence[str] | None = None,
    row_filter: Sequence[dict[str, Any] | Predicate] = (),
    index_columns: Sequence[str] = (),
    strategy: Literal["streams", "chunk_tables"] | None = None,
    destination: str | None = None,
    parallelism: int = 8,
    settings: Settings | None = None,
) -> pads.Dataset:
    """Fetch a BigQuery table (or a query's result) into Parquet on GCS; return an Arrow dataset.

    A table is read with the ``streams`` strategy unless ``strategy="chunk_tables"``; a query
    always uses ``chunk_tables``, split on ``index_columns`` (one chunk if none are given).

    >>> ds = fetch_table("my-project.retail.transactions", columns=["date", "units"],
    ...                  row_filter=[{"column": "units", "op": ">", "values": [0]}])
    >>> df = ds.to_table().to_pandas()
    >>> ds = fetch_table(query="SELECT store_id, SUM(revenue) AS revenue FROM ... GROUP BY 1",
    ...                  index_columns=["store_id"])
    """
    settings = settings or Settings.from_env()
    run_id = new_run_id()
    request = FetchRequest(
        run_id=run_id,
        table=table,
        query=query,
        columns=list(columns) if columns else None,
        row_filter=[Predicate.model_validate(p) for p in row_filter],
        index_columns=list(index_columns),
        strategy=strategy or ("chunk_tables" if query else "streams"),
        destination=destination or settings.fetch_destination(run_id),
        parallelism=parallelism,
    )
    run_in_process(request, settings)
    ended = runs.state(clients.storage_client(settings), request.destination)
    if ended.manifest is None:
        raise RunStalled(f"run {run_id} finished without a manifest")
    return dataset_from_manifest(ended.manifest, settings)


def fetch_dataframe(table: str | None = None, **kwargs: Any) -> Any:
    """``fetch_table(...)`` as a pandas DataFrame."""
    return fetch_table(table, **kwargs).to_table().to_pandas()


def publish_and_follow(
    request: FetchRequest,
    settings: Settings,
    *,
    timeout_s: float = 3600.0,
    progress: Any = None,
    poll_s: float = 0.5,
) -> dict:
    """Publish ``request`` on ``fetch-requests`` (as Cloud Scheduler or any client would) and
    follow the Pub/Sub fan-out until its manifest appears; returns the manifest.

    ``progress`` (a tqdm bar, optional) gets the source's row count as total once the run is
    planned, and the rows of finished chunks as they land.
    """
    publisher = clients.publisher_client(settings)
    started = time.monotonic()
    publisher.publish(
        publisher.topic_path(settings.project, settings.topic(topology.FETCH_REQUESTS)),
        dump(request),
    ).result()
    gcs = clients.storage_client(settings)
    while True:
        now = runs.state(gcs, request.destination)
        if now.state == "complete" and now.manifest is not None:
            if progress is not None:
                progress.update(now.manifest["rows"] - progress.n)
            return now.manifest
        if now.state == "failed" and now.run_id == request.run_id:
            raise RunFailed(f"run {request.run_id} failed in {now.detail}")
        elapsed = time.monotonic() - started
        if elapsed > timeout_s:
            raise RunStalled(f"run {request.run_id} not complete after {timeout_s:.0f} s")
        if now.state == "unknown" and elapsed > 60:
            raise RunStalled(f"no plan for run {request.run_id} after 60 s; see plan_fetch's log")
        if progress is not None and now.plan is not None:
            if progress.total is None:
                progress.total = now.plan["source_rows"]
            progress.update(runs.rows_done(gcs, request.destination) - progress.n)
        time.sleep(poll_s)
