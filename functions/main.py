"""Cloud Functions (2nd gen) entry points: decode the event, call ``shared``, publish the result.

Deployed from this folder with ``shared/`` beside it; each entry point is its own function.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from typing import Any

import functions_framework
from cloudevents.http import CloudEvent

from shared import claims, clients, log, topology
from shared.errors import PermanentError
from shared.fetch.chunks import create_chunk as materialise_chunk
from shared.fetch.finalize import finalize
from shared.fetch.library import plan_for
from shared.fetch.plan import run_id_for
from shared.fetch.runs import announce_once, record_failure
from shared.fetch.worker import fetch_chunk as read_chunk
from shared.identifiers import GcsUri
from shared.messages import (
    ChunkDone,
    ChunkReady,
    ChunkSpec,
    FetchComplete,
    FetchRequest,
    RbacTrigger,
    TrainingTick,
)
from shared.pubsub import Delivery, handle, publish_all
from shared.settings import Settings

log.configure()
logger = log.get_logger("functions")


def _topic_of(message: ChunkSpec | ChunkReady | ChunkDone) -> str:
    if isinstance(message, ChunkSpec):
        return topology.FETCH_CHUNKS
    return (
        topology.FETCH_CHUNK_DONE if isinstance(message, ChunkDone) else topology.FETCH_CHUNK_READY
    )


def _plan_fetch(request: FetchRequest, delivery: Delivery) -> None:
    settings = Settings.from_env()
    run_id = run_id_for(request, delivery.message_id)
    plan = plan_for(request, run_id, settings)
    publisher = clients.publisher_client(settings)

    def announce() -> int:
        sent = 0
        for topic in sorted({_topic_of(c) for c in plan.chunks}):
            batch = [c for c in plan.chunks if _topic_of(c) == topic]
            sent += len(publish_all(publisher, settings.project, settings.topic(topic), batch))
        return sent

    announced = announce_once(
        clients.storage_client(settings),
        request.destination,
        run_id,
        announce,
        lease_s=settings.claim_lease_s,
    )
    logger.info(
        "planned fetch of %s: %d chunks (%s)",
        plan.table,
        len(plan.chunks),
        plan.strategy,
        extra={
            "run_id": run_id,
            "function": "plan_fetch",
            "strategy": plan.strategy,
            "chunks": len(plan.chunks),
            "estimated_rows": plan.estimated_rows,
            "reused_plan": plan.reused,
            "announced": announced,
        },
    )


def _run_failed(stage: str) -> Callable[[Any, Delivery, Exception], None]:
    """Declare the message's run failed with the reason a retry cannot change."""

    def record(message: Any, delivery: Delivery, exc: Exception) -> None:
        request = getattr(message, "request", None)
        destination = getattr(message, "destination", None) or getattr(request, "destination", None)
        run_id = getattr(message, "run_id", None)
        if isinstance(message, FetchRequest):
            run_id = run_id_for(message, delivery.message_id)
        if destination and run_id:
            settings = Settings.from_env()
            record_failure(
                clients.storage_client(settings),
                destination,
                run_id,
                stage,
                str(exc),
                allowed=settings.fetch_destinations,
            )

    return record


def _create_chunk(spec: ChunkSpec, delivery: Delivery) -> None:
    settings = Settings.from_env()
    out = materialise_chunk(
        spec,
        bq=clients.bigquery_client(settings),
        read_client=clients.bigquery_read_client(settings),
        gcs=clients.storage_client(settings),
        billing_project=settings.project,
    )
    topic = settings.topic(_topic_of(out))
    publisher = clients.publisher_client(settings)
    dest = GcsUri.parse(spec.request.destination)
    # A duplicate delivery finds the chunk table made (job id per run and chunk) and must not
    # announce it a second time: the announcement is claimed first.
    claims.once(
        clients.storage_client(settings).bucket(dest.bucket),
        dest.child(f"_claims/chunk-{spec.chunk:05d}.json").path,
        lambda: {"message_id": publish_all(publisher, settings.project, topic, [out])[0]},
        lease_s=settings.claim_lease_s,
        labels={"run_id": spec.run_id, "chunk": spec.chunk},
    )
    logger.info(
        "chunk %d of %s created",
        spec.chunk,
        spec.run_id,
        extra={"run_id": spec.run_id, "chunk": spec.chunk, "function": "create_chunk"},
    )


def _fetch_chunk(message: ChunkReady, delivery: Delivery) -> None:
    settings = Settings.from_env()
    outcome = read_chunk(
        message,
        read_client=clients.bigquery_read_client(settings),
        gcs=clients.storage_client(settings),
        part_rows=settings.part_max_rows,
        time_budget_s=settings.time_budget_s,
    )
    out = outcome.following
    topic = settings.topic(_topic_of(out))
    publish_all(clients.publisher_client(settings), settings.project, topic, [out])
    logger.info(
        "chunk %d of %s: %s",
        message.chunk,
        message.run_id,
        "done" if isinstance(out, ChunkDone) else f"handed on at offset {out.offset}",
        extra={
            "run_id": message.run_id,
            "chunk": message.chunk,
            "function": "fetch_chunk",
            "rows": out.rows if isinstance(out, ChunkDone) else None,
            "offset": None if isinstance(out, ChunkDone) else out.offset,
        },
    )


def _finalize_fetch(done: ChunkDone, delivery: Delivery) -> None:
    settings = Settings.from_env()
    publisher = clients.publisher_client(settings)
    topic = settings.topic(topology.FETCH_COMPLETE)

    def publish(message: FetchComplete) -> str:
        return publish_all(publisher, settings.project, topic, [message])[0]

    result = finalize(
        done,
        gcs=clients.storage_client(settings),
        bq=clients.bigquery_client(settings),
        publish=publish,
        lease_s=settings.claim_lease_s,
    )
    if result.complete is None:
        return
    logger.info(
        "run %s complete: %d rows in %d parts",
        done.run_id,
        result.complete.rows,
        result.complete.parts,
        extra={
            "run_id": done.run_id,
            "function": "finalize_fetch",
            "rows": result.complete.rows,
            "manifest": result.complete.manifest_uri,
            "published": result.published,
        },
    )


@functions_framework.cloud_event
def plan_fetch(event: CloudEvent) -> None:
    """``fetch-requests`` -> plan (recorded once) -> ``fetch-chunk-ready`` or ``fetch-chunks``."""
    handle(
        event,
        topology.FETCH_REQUESTS,
        FetchRequest,
        _plan_fetch,
        "plan_fetch",
        on_permanent=_run_failed("plan_fetch"),
    )


def _sync_rbac(trigger: RbacTrigger, delivery: Delivery) -> None:
    from shared.rbac.groups import GroupsReader, cloud_identity_service
    from shared.rbac.sync import (
        GcsDigest,
        GcsRoleLedger,
        airflow_client,
        load_config_from,
        sync,
    )

    settings = Settings.from_env()
    location = os.environ.get("RETAIL_RBAC_CONFIG")
    if not location:
        raise PermanentError("RETAIL_RBAC_CONFIG is not set: no RBAC config to reconcile")
    gcs = clients.storage_client(settings)
    config = load_config_from(location, gcs)
    result = sync(
        config,
        groups=GroupsReader(cloud_identity_service()),
        airflow=airflow_client(config),
        digests=GcsDigest(gcs.bucket(settings.data_bucket)),
        force=trigger.force,
        ledger=GcsRoleLedger(gcs.bucket(settings.data_bucket)),
    )
    logger.info(
        "rbac sync (%s): %d changes",
        trigger.reason,
        len(result.changes),
        extra={"function": "sync_rbac", "changes": len(result.changes)},
    )


def _launch_training(done: FetchComplete, delivery: Delivery) -> None:
    from shared.training.launch import launch

    settings = Settings.from_env()
    for job in done.train:
        launch(
            job,
            done.run_id,
            done.manifest_uri,
            jobs_client=clients.jobs_client(settings),
            executions_client=clients.executions_client(settings),
            gcs=clients.storage_client(settings),
            marker_prefix=f"gs://{settings.data_bucket}/training",
            project=settings.project,
            region=settings.region,
            prefix=settings.prefix,
            lease_s=settings.claim_lease_s,
        )


def _schedule_training(tick: TrainingTick, delivery: Delivery) -> None:
    settings = Settings.from_env()
    day = tick.date or dt.datetime.now(dt.UTC).date()
    run_id = f"{tick.job}-{day:%Y%m%d}"
    request = FetchRequest(
        run_id=run_id,
        table=tick.table,
        columns=tick.columns,
        destination=f"gs://{settings.data_bucket}/fetch/{run_id}",
        parallelism=tick.parallelism,
        train=[tick.job],
    )
    publish_all(
        clients.publisher_client(settings),
        settings.project,
        settings.topic(topology.FETCH_REQUESTS),
        [request],
    )
    logger.info(
        "scheduled %s: fetch %s as run %s",
        tick.job,
        tick.table,
        run_id,
        extra={"run_id": run_id, "function": "schedule_training", "job": tick.job},
    )


@functions_framework.cloud_event
def schedule_training(event: CloudEvent) -> None:
    """``training-schedule`` (Scheduler) -> a fetch request that ends in the training job."""
    handle(event, topology.TRAINING_SCHEDULE, TrainingTick, _schedule_training, "schedule_training")


@functions_framework.cloud_event
def launch_training(event: CloudEvent) -> None:
    """``fetch-complete`` -> a Cloud Run job execution per training job the request asked for."""
    handle(event, topology.FETCH_COMPLETE, FetchComplete, _launch_training, "launch_training")


@functions_framework.cloud_event
def sync_rbac(event: CloudEvent) -> None:
    """``rbac-sync`` (Scheduler tick or group-change audit event) -> one full reconcile."""
    handle(event, topology.RBAC_SYNC, RbacTrigger, _sync_rbac, "sync_rbac")


@functions_framework.cloud_event
def create_chunk(event: CloudEvent) -> None:
    """``fetch-chunks`` -> chunk table (CTAS, once) -> ``fetch-chunk-ready``."""
    handle(
        event,
        topology.FETCH_CHUNKS,
        ChunkSpec,
        _create_chunk,
        "create_chunk",
        on_permanent=_run_failed("create_chunk"),
    )


@functions_framework.cloud_event
def fetch_chunk(event: CloudEvent) -> None:
    """``fetch-chunk-ready`` -> Parquet parts on GCS -> ``fetch-chunk-done`` (or hand on)."""
    handle(
        event,
        topology.FETCH_CHUNK_READY,
        ChunkReady,
        _fetch_chunk,
        "fetch_chunk",
        on_permanent=_run_failed("fetch_chunk"),
    )


@functions_framework.cloud_event
def finalize_fetch(event: CloudEvent) -> None:
    """``fetch-chunk-done`` -> manifest (exactly once) -> ``fetch-complete``."""
    handle(
        event,
        topology.FETCH_CHUNK_DONE,
        ChunkDone,
        _finalize_fetch,
        "finalize_fetch",
        on_permanent=_run_failed("finalize_fetch"),
    )
