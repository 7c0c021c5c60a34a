"""Claim before act: a side effect that must happen once, whatever the deliveries do.

Every message may arrive twice, at the same moment, or never finish. An effect that must
happen once (publishing ``fetch-complete``, announcing a run's chunks, starting a job
execution) goes through :func:`once`:

1. a create-only claim object (GCS precondition ``if_generation_match=0``) holding who claimed
   and when; exactly one delivery creates it;
2. that delivery performs the effect, then writes the effect's result onto its claim (a
   generation-matched overwrite, so only the holder can);
3. any other delivery reads the claim: with a result, the effect happened and it returns that
   result; without one, it waits out the lease (the holder is probably still acting), then
   asks ``verify`` for the real state (e.g. the job's executions) and records what it finds,
   and only if nothing happened takes the claim over (generation-matched, so one delivery
   wins) and acts.

An effect that fails releases its claim at once, so a retry does not wait for the lease.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import storage

from shared.log import get_logger

log = get_logger("shared.claims")
DEFAULT_LEASE_S = 30.0


def holder() -> str:
    """Who is claiming: host, process and a random part (two threads differ)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Outcome:
    """The effect's recorded result, and whether this call performed it."""

    result: dict[str, Any]
    acted: bool


def _now() -> float:
    return time.time()


def _record(who: str, **extra: Any) -> str:
    return json.dumps(
        {"holder": who, "claimed_at": dt.datetime.now(dt.UTC).isoformat(), **extra}, default=str
    )


def read(bucket: storage.Bucket, path: str) -> tuple[dict[str, Any], int] | None:
    """The claim at ``path`` and its generation, or None."""
    blob = bucket.get_blob(path)
    if blob is None:
        return None
    try:
        data = blob.download_as_bytes(if_generation_match=blob.generation)
    except (gexc.NotFound, gexc.PreconditionFailed):
        return None  # replaced or removed meanwhile: the caller reads again
    return json.loads(data), int(blob.generation)


def _age_s(record: dict[str, Any]) -> float:
    claimed = dt.datetime.fromisoformat(record["claimed_at"])
    return max(0.0, _now() - claimed.timestamp())


def once(
    bucket: storage.Bucket,
    path: str,
    act: Callable[[], dict[str, Any]],
    *,
    verify: Callable[[], dict[str, Any] | None] | None = None,
    lease_s: float = DEFAULT_LEASE_S,
    poll_s: float = 0.2,
    labels: dict[str, Any] | None = None,
) -> Outcome:
    """Perform ``act`` once for the claim at ``path``; see the module docstring."""
    who = holder()
    labels = labels or {}
    while True:
        try:
            blob = bucket.blob(path)
            blob.upload_from_string(
                _record(who), content_type="application/json", if_generation_match=0
            )
            return _act(bucket, path, who, int(blob.generation), act, labels)
        except gexc.PreconditionFailed:
            pass
        found = read(bucket, path)
        if found is None:
            continue  # released by a failed holder: claim again
        record, generation = found
        if "result" in record:
            return Outcome(record["result"], acted=False)
        if _age_s(record) < lease_s:
            time.sleep(poll_s)  # the holder is probably acting right now
            continue
        # The lease ran out without a result: what really happened?
        happened = verify() if verify is not None else None
        if happened is not None:
            _write_result(bucket, path, generation, record, happened)
            log.info("claim %s: effect found done after its holder went away", path,
                     extra={**labels, "holder": record.get("holder")})  # fmt: skip
            return Outcome(happened, acted=False)
        try:
            blob = bucket.blob(path)
            blob.upload_from_string(
                _record(who, took_over_from=record.get("holder")),
                content_type="application/json",
                if_generation_match=generation,
            )
        except gexc.PreconditionFailed:
            continue  # another delivery took it over first
        log.warning("claim %s: lease of %s ran out without a result; acting", path,
                    record.get("holder"), extra=labels)  # fmt: skip
        return _act(bucket, path, who, int(blob.generation), act, labels)


def _act(
    bucket: storage.Bucket,
    path: str,
    who: str,
    generation: int,
    act: Callable[[], dict[str, Any]],
    labels: dict[str, Any],
) -> Outcome:
    try:
        result = act()
    except BaseException:
        # Release at once: a retry should not wait out the lease of an effect that failed.
        with contextlib.suppress(gexc.GoogleAPICallError):
            bucket.blob(path).delete(if_generation_match=generation)
        raise
    _write_result(bucket, path, generation, {"holder": who}, result)
    return Outcome(result, acted=True)


def _write_result(
    bucket: storage.Bucket, path: str, generation: int, record: dict, result: dict
) -> None:
    body = json.dumps(
        {**record, "result": result, "done_at": dt.datetime.now(dt.UTC).isoformat()}, default=str
    )
    with contextlib.suppress(gexc.PreconditionFailed):  # recorded by someone else meanwhile
        bucket.blob(path).upload_from_string(
            body, content_type="application/json", if_generation_match=generation
        )


def result_of(bucket: storage.Bucket, path: str) -> dict[str, Any] | None:
    """The recorded result of the claim at ``path``, if the effect happened."""
    found = read(bucket, path)
    return found[0].get("result") if found else None
