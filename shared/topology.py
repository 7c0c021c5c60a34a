"""The Pub/Sub topology and Scheduler jobs, from the one declaration in ``shared/platform.yaml``.

Names here are base names; a deployment puts its environment's prefix in front
(:meth:`shared.settings.Settings.topic`, :class:`shared.platform.Names`). The local stack builds
exactly this on the emulators and Terraform in ``infra/`` reads the same file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from shared.platform import declaration

FETCH_REQUESTS = "fetch-requests"
FETCH_CHUNKS = "fetch-chunks"
FETCH_CHUNK_READY = "fetch-chunk-ready"
FETCH_CHUNK_DONE = "fetch-chunk-done"
FETCH_COMPLETE = "fetch-complete"
RBAC_SYNC = "rbac-sync"
TRAINING_SCHEDULE = "training-schedule"
DEAD_LETTER = "dead-letter"

_DECL = declaration()
TOPICS: tuple[str, ...] = tuple(_DECL["topics"])
for _name in (FETCH_REQUESTS, FETCH_CHUNKS, FETCH_CHUNK_READY, FETCH_CHUNK_DONE, FETCH_COMPLETE,
              RBAC_SYNC, TRAINING_SCHEDULE, DEAD_LETTER):  # fmt: skip
    if _name not in TOPICS:
        raise RuntimeError(f"shared/platform.yaml no longer declares topic {_name!r}")

# Messages that exhausted their delivery attempts are kept here for a person to look at.
DEAD_LETTER_SUBSCRIPTION: str = _DECL["dead_letter"]["subscription"]


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


_POLICY = _DECL["subscription_policy"]
SUBSCRIPTIONS: tuple[PushSubscription, ...] = tuple(
    PushSubscription(
        name,
        sub["topic"],
        sub["entry_point"],
        ack_deadline_s=int(sub["ack_deadline_s"]),
        min_backoff_s=int(_POLICY["min_backoff_s"]),
        max_backoff_s=int(_POLICY["max_backoff_s"]),
        max_delivery_attempts=int(_POLICY["max_delivery_attempts"]),
    )
    for name, sub in _DECL["subscriptions"].items()
)


def entry_points() -> list[str]:
    """Every function entry point, in a stable order."""
    return sorted({sub.entry_point for sub in SUBSCRIPTIONS})


def topic_of(entry_point: str) -> str:
    """The topic whose push subscription delivers to ``entry_point``."""
    found = [sub.topic for sub in SUBSCRIPTIONS if sub.entry_point == entry_point]
    if len(found) != 1:
        raise ValueError(f"{entry_point!r} is pushed {len(found)} topics; one was expected")
    return found[0]


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


def schedules_of(decl: dict) -> tuple[Schedule, ...]:
    """The Scheduler jobs a declaration (``platform.yaml`` or a copy being checked) lists."""
    return tuple(
        Schedule(name, s["cron"], s["topic"], json.dumps(s["body"]), s.get("why", ""))
        for name, s in decl["schedules"].items()
    )


SCHEDULES: tuple[Schedule, ...] = schedules_of(_DECL)
