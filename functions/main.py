"""Cloud Functions (2nd gen) entry points: decode the event, call ``shared``, publish the result.

Deployed from this folder with ``shared/`` beside it; each entry point is its own function.
:func:`entry_point` wires one: the topic it is pushed (from ``shared/platform.yaml``), the
message contract it parses, and whether a permanent refusal ends the message's fetch run as
failed (so nobody waits for it).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from typing import Any, TypeVar

import functions_framework
from cloudevents.http import CloudEvent
from pydantic import BaseModel

from shared import claims, clients, log, topology
from shared.errors import PermanentError
from shared.fetch.chunks import create_chunk as materialise_chunk
from shared.fetch.finalize import finalize
from shared.fetch.layout import RunLayout
from shared.fetch.library import plan_for
from shared.fetch.plan import run_id_for
from shared.fetch.runs import announce_once, record_failure
from shared.fetch.worker import fetch_chunk as read_chunk
from shared.messages import (
    ChunkDone,
    ChunkReady,
    ChunkSpec,
    Contract,
    FetchComplete,
    FetchRequest,
    RbacTrigger,
    TrainingTick,
)
from shared.pubsub import Delivery, handle, publish_all
from shared.settings import Settings, SettingsError

log.configure()
logger = log.get_logger("functions")
M = TypeVar("M", bound=BaseModel)
Implementation = Callable[[M, Delivery, Settings], None]


def entry_point(
    model: type[M], *, fails_run: bool = False
) -> Callable[[Implementation[M]], Callable[[CloudEvent], None]]:
    """Make ``implementation`` (named as the entry point) a CloudEvent function for the topic
    that ``shared/platform.yaml`` pushes to it, parsing ``model``; with ``fails_run``, a
    permanent refusal is recorded as the run's failure."""

    def wire(implementation: Implementation[M]) -> Callable[[CloudEvent], None]:
        name = implementation.__name__
        topic = topology.topic_of(name)
        on_permanent = _run_failed(name) if fails_run else None

        @functools.wraps(implementation)
        def function(event: CloudEvent) -> None:
            # Read once per delivery; a malformed message is refused even where the settings
            # are incomplete, a well-formed one needs the project.
            settings = Settings.from_env(project_required=False)

            def process(message: M, delivery: Delivery) -> None:
                if not settings.project:
                    raise SettingsError("GOOGLE_CLOUD_PROJECT is not set")
                implementation(message, delivery, settings)

            handle(
                event,
                topic,
                model,
                process,
                name,
                on_permanent=on_permanent,
                iam_propagation_s=settings.iam_propagation_s,
            )

        return functions_framework.cloud_event(function)

    return wire


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


def _topic_of(message: ChunkSpec | ChunkReady | ChunkDone) -> str:
    if isinstance(message, ChunkSpec):
        return topology.FETCH_CHUNKS
    return (
        topology.FETCH_CHUNK_DONE if isinstance(message, ChunkDone) else topology.FETCH_CHUNK_READY
    )


def _publish(settings: Settings, topic: str, messages: list[Contract]) -> list[str]:
    """Publish to a topic of ``shared.topology`` under the deployment's name for it."""
    publisher = clients.publisher_client(settings)
    return publish_all(publisher, settings.project, settings.topic(topic), messages)


@entry_point(FetchRequest, fails_run=True)
def plan_fetch(request: FetchRequest, delivery: Delivery, settings: Settings) -> None:
    """``fetch-requests`` -> plan (recorded once) -> ``fetch-chunk-ready`` or ``fetch-chunks``."""
    run_id = run_id_for(request, delivery.message_id)
    plan = plan_for(request, run_id, settings)

    def announce() -> int:
        topics = sorted({_topic_of(c) for c in plan.chunks})
        return sum(
            len(_publish(settings, t, [c for c in plan.chunks if _topic_of(c) == t]))
            for t in topics
        )

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


@entry_point(ChunkSpec, fails_run=True)
def create_chunk(spec: ChunkSpec, delivery: Delivery, settings: Settings) -> None:
    """``fetch-chunks`` -> chunk table (CTAS, once) -> ``fetch-chunk-ready``."""
    gcs = clients.storage_client(settings)
    out = materialise_chunk(spec, clients.FetchClients.of(settings))
    run = RunLayout.of(spec.request.destination)
    # A duplicate delivery finds the chunk table made (job id per run and chunk) and must not
    # announce it a second time: the announcement is claimed first.
    claims.once(
        gcs.bucket(run.bucket),
        run.chunk_claim(spec.chunk).path,
        lambda: {"message_id": _publish(settings, _topic_of(out), [out])[0]},
        lease_s=settings.claim_lease_s,
        labels={"run_id": spec.run_id, "chunk": spec.chunk},
    )
    logger.info(
        "chunk %d of %s created",
        spec.chunk,
        spec.run_id,
        extra={"run_id": spec.run_id, "chunk": spec.chunk, "function": "create_chunk"},
    )


@entry_point(ChunkReady, fails_run=True)
def fetch_chunk(message: ChunkReady, delivery: Delivery, settings: Settings) -> None:
    """``fetch-chunk-ready`` -> Parquet parts on GCS -> ``fetch-chunk-done`` (or hand on)."""
    outcome = read_chunk(
        message,
        read_client=clients.bigquery_read_client(settings),
        gcs=clients.storage_client(settings),
        part_rows=settings.part_max_rows,
        time_budget_s=settings.time_budget_s,
    )
    out = outcome.following
    _publish(settings, _topic_of(out), [out])
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


@entry_point(ChunkDone, fails_run=True)
def finalize_fetch(done: ChunkDone, delivery: Delivery, settings: Settings) -> None:
    """``fetch-chunk-done`` -> manifest (exactly once) -> ``fetch-complete``."""
    result = finalize(
        done,
        gcs=clients.storage_client(settings),
        bq=clients.bigquery_client(settings),
        publish=lambda message: _publish(settings, topology.FETCH_COMPLETE, [message])[0],
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


@entry_point(FetchComplete)
def launch_training(done: FetchComplete, delivery: Delivery, settings: Settings) -> None:
    """``fetch-complete`` -> a Cloud Run job execution per training job the request asked for."""
    from shared.training.launch import Launcher, launch

    for job in done.train:
        launch(job, done.run_id, done.manifest_uri, Launcher.of(settings))


@entry_point(TrainingTick)
def schedule_training(tick: TrainingTick, delivery: Delivery, settings: Settings) -> None:
    """``training-schedule`` (Scheduler) -> a fetch request that ends in the training job."""
    day = tick.date or dt.datetime.now(dt.UTC).date()
    run_id = f"{tick.job}-{day:%Y%m%d}"
    request = FetchRequest(
        run_id=run_id,
        table=tick.table,
        columns=tick.columns,
        destination=settings.fetch_destination(run_id),
        parallelism=tick.parallelism,
        train=[tick.job],
    )
    _publish(settings, topology.FETCH_REQUESTS, [request])
    logger.info(
        "scheduled %s: fetch %s as run %s",
        tick.job,
        tick.table,
        run_id,
        extra={"run_id": run_id, "function": "schedule_training", "job": tick.job},
    )


@entry_point(RbacTrigger)
def sync_rbac(trigger: RbacTrigger, delivery: Delivery, settings: Settings) -> None:
    """``rbac-sync`` (Scheduler tick or group-change audit event) -> one full reconcile."""
    from shared.rbac.groups import GroupsReader
    from shared.rbac.lease import lease_beside
    from shared.rbac.ledger import GcsRoleLedger
    from shared.rbac.sync import GcsDigest, airflow_client, load_config_from, sync

    if not settings.rbac_config:
        raise PermanentError("RETAIL_RBAC_CONFIG is not set: no RBAC config to reconcile")
    gcs = clients.storage_client(settings)
    config = load_config_from(settings.rbac_config, gcs)
    bucket = gcs.bucket(settings.data_bucket)
    ledger = GcsRoleLedger(bucket)
    result = sync(
        config,
        groups=GroupsReader(clients.cloud_identity_service(settings)),
        airflow=airflow_client(config),
        digests=GcsDigest(bucket),
        force=trigger.force,
        ledger=ledger,
        lease=lease_beside(ledger.path, bucket),
    )
    logger.info(
        "rbac sync (%s): %d changes",
        trigger.reason,
        len(result.changes),
        extra={"function": "sync_rbac", "changes": len(result.changes)},
    )
