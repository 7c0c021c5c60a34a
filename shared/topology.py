"""The Pub/Sub topology, declared once: topics, and which function each subscription pushes to.

The local stack builds exactly this on the emulator; Terraform in ``infra/`` declares the same
names, and a test holds the two together.
"""

from __future__ import annotations

from dataclasses import dataclass

FETCH_REQUESTS = "fetch-requests"
FETCH_CHUNKS = "fetch-chunks"
FETCH_CHUNK_READY = "fetch-chunk-ready"
FETCH_CHUNK_DONE = "fetch-chunk-done"
FETCH_COMPLETE = "fetch-complete"
RBAC_SYNC = "rbac-sync"
TRAINING_SCHEDULE = "training-schedule"
DEAD_LETTER = "dead-letter"

TOPICS: tuple[str, ...] = (
    FETCH_REQUESTS,
    FETCH_CHUNKS,
    FETCH_CHUNK_READY,
    FETCH_CHUNK_DONE,
    FETCH_COMPLETE,
    RBAC_SYNC,
    TRAINING_SCHEDULE,
    DEAD_LETTER,
)

# Messages that exhausted their delivery attempts are kept here for a person to look at.
DEAD_LETTER_SUBSCRIPTION = "dead-letter-inspect"


@dataclass(frozen=True)
class PushSubscription:
    """A push subscription delivering ``topic`` to the function ``entry_point``."""

    name: str
    topic: str
    entry_point: str
    ack_deadline_s: int = 60
    min_backoff_s: int = 10
    max_backoff_s: int = 600
    max_delivery_attempts: int = 5


SUBSCRIPTIONS: tuple[PushSubscription, ...] = (
    PushSubscription("plan-fetch", FETCH_REQUESTS, "plan_fetch", ack_deadline_s=120),
    # A chunk's CREATE TABLE AS SELECT can run for minutes on a large source.
    PushSubscription("create-chunk", FETCH_CHUNKS, "create_chunk", ack_deadline_s=600),
    # A chunk may take the whole 540 s function timeout; the ack deadline must outlast it.
    PushSubscription("fetch-chunk", FETCH_CHUNK_READY, "fetch_chunk", ack_deadline_s=600),
    PushSubscription("finalize-fetch", FETCH_CHUNK_DONE, "finalize_fetch", ack_deadline_s=120),
    PushSubscription("launch-training", FETCH_COMPLETE, "launch_training", ack_deadline_s=120),
    # Monthly pricing and Saturday-night promotion ticks: fresh data first, then training.
    PushSubscription(
        "schedule-training", TRAINING_SCHEDULE, "schedule_training", ack_deadline_s=60
    ),
    # Scheduler ticks and group-change audit events (via a log sink) both ask for a reconcile.
    PushSubscription("sync-rbac", RBAC_SYNC, "sync_rbac", ack_deadline_s=300),
)


def entry_points() -> list[str]:
    """Every function entry point, in a stable order."""
    return sorted({sub.entry_point for sub in SUBSCRIPTIONS})


def push_path(project: str, topic: str) -> str:
    """URL path of a push endpoint; functions-framework names the CloudEvent source after it."""
    return f"/projects/{project}/topics/{topic}"


@dataclass(frozen=True)
class Schedule:
    """A Cloud Scheduler job publishing ``payload`` (JSON; ``{table}`` is the source
    transactions table) to ``topic`` on ``cron``, in the deployment's time zone."""

    name: str
    cron: str
    topic: str
    payload: str
    why: str


# DESIGN.md: pricing monthly, promotions weekly on Saturday night, the RBAC reconcile every ten
# minutes as the fallback to group-change events.
SCHEDULES: tuple[Schedule, ...] = (
    Schedule(
        "train-pricing",
        "0 2 1 * *",
        TRAINING_SCHEDULE,
        '{"job": "pricing", "table": "{table}"}',
        "monthly: fetch the transactions, then fit elasticities and prices",
    ),
    Schedule(
        "train-promotions",
        "0 23 * * 6",
        TRAINING_SCHEDULE,
        '{"job": "promotions", "table": "{table}"}',
        "weekly, Saturday 23:00: fetch, then retrain the promotion model",
    ),
    Schedule(
        "rbac-reconcile",
        "*/10 * * * *",
        RBAC_SYNC,
        '{"reason": "tick"}',
        "every 10 minutes: reconcile Airflow roles with Google Groups",
    ),
)
