"""Cloud Functions (2nd gen) entry points: decode the event, call ``shared``, publish the result.

Deployed from this folder with ``shared/`` beside it; each entry point is its own function.
"""

from __future__ import annotations

import functions_framework
from cloudevents.http import CloudEvent

from shared import clients, log, topology
from shared.fetch.plan import plan_streams, run_id_for
from shared.messages import FetchRequest
from shared.pubsub import Delivery, handle, publish_all
from shared.settings import Settings

log.configure()
logger = log.get_logger("functions")


def _plan_fetch(request: FetchRequest, delivery: Delivery) -> None:
    settings = Settings.from_env()
    run_id = run_id_for(request, delivery.message_id)
    plan = plan_streams(
        request,
        run_id,
        billing_project=settings.project,
        max_streams=settings.max_streams,
        bq=clients.bigquery_client(settings),
        read_client=clients.bigquery_read_client(settings),
        gcs=clients.storage_client(settings),
    )
    publish_all(
        clients.publisher_client(settings),
        settings.project,
        topology.FETCH_CHUNK_READY,
        plan.chunks,
    )
    logger.info(
        "planned fetch of %s: %d chunks",
        plan.table,
        len(plan.chunks),
        extra={
            "run_id": run_id,
            "function": "plan_fetch",
            "chunks": len(plan.chunks),
            "estimated_rows": plan.estimated_rows,
            "reused_plan": plan.reused,
        },
    )


@functions_framework.cloud_event
def plan_fetch(event: CloudEvent) -> None:
    """``fetch-requests`` -> plan (read session, recorded once) -> ``fetch-chunk-ready``."""
    handle(event, topology.FETCH_REQUESTS, FetchRequest, _plan_fetch, "plan_fetch")
