"""A run's state on GCS, and the side effects of a run that must happen once.

Every run ends with an answer: its manifest (complete) or its failure record (failed, with the
stage and the reason: a query that fails when run, a chunk that cannot be read), named by
:mod:`shared.fetch.layout`. Both are create-only, so the first answer stands. Followers (the
CLI, ``publish_and_follow``, ``python -m local status``) read :func:`state`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass

from google.api_core import exceptions as gexc
from google.cloud import storage

from shared import claims
from shared.fetch.layout import RunLayout, read_json
from shared.identifiers import GcsUri
from shared.log import get_logger

log = get_logger("shared.fetch.runs")


@dataclass(frozen=True)
class RunState:
    """``complete``, ``failed``, ``running`` (planned, no answer yet) or ``unknown``."""

    state: str
    run_id: str | None = None
    detail: str = ""
    manifest: dict | None = None
    plan: dict | None = None


def state(gcs: storage.Client, destination: str) -> RunState:
    """What the run at ``destination`` came to."""
    layout = RunLayout.of(destination)
    bucket = gcs.bucket(layout.bucket)
    manifest = read_json(bucket, layout.manifest.path)
    if manifest is not None:
        return RunState("complete", manifest.get("run_id"), f"{manifest['rows']} rows", manifest)
    failed = read_json(bucket, layout.failed.path)
    if failed is not None:
        return RunState(
            "failed", failed.get("run_id"), f"{failed.get('stage')}: {failed.get('reason')}"
        )
    plan = read_json(bucket, layout.plan.path)
    if plan is not None:
        chunks = len(plan.get("chunks", []))
        return RunState("running", plan.get("run_id"), f"{chunks} chunks", plan=plan)
    return RunState("unknown")


def planned(gcs: storage.Client, root: str, limit: int = 10) -> list[tuple[str, dt.datetime]]:
    """(destination, when it was planned) of the newest runs below ``root``
    (``gs://bucket/prefix/``), newest first (a plan is written once, at the run's start)."""
    where = GcsUri.parse(root)
    prefix = f"{where.path}/" if where.path else ""
    plans = [b for b in gcs.list_blobs(where.bucket, prefix=prefix) if RunLayout.is_plan(b.name)]
    plans.sort(key=lambda b: b.updated, reverse=True)
    return [(f"gs://{where.bucket}/{b.name.rsplit('/', 1)[0]}", b.updated) for b in plans[:limit]]


def recent(gcs: storage.Client, root: str, limit: int = 10) -> list[RunState]:
    """The newest runs whose destinations lie below ``root`` (``gs://bucket/prefix/``)."""
    return [state(gcs, destination) for destination, _ in planned(gcs, root, limit)]


def rows_done(gcs: storage.Client, destination: str) -> int:
    """Rows of the chunks the run at ``destination`` has recorded done so far."""
    layout = RunLayout.of(destination)
    return sum(
        json.loads(b.download_as_bytes())["rows"]
        for b in gcs.list_blobs(layout.bucket, prefix=layout.chunk_records_prefix, delimiter="/")
        if layout.chunk_of_record(b.name) is not None
    )


def record_failure(
    gcs: storage.Client,
    destination: str,
    run_id: str,
    stage: str,
    reason: str,
    allowed: tuple[str, ...] = (),
) -> bool:
    """Declare the run failed (first reason wins); only in the run's own destination: one that
    holds its plan, or (before planning) an allowed, empty one outside any other run's tree."""
    from shared.errors import InvalidRequest
    from shared.fetch.plan import check_destination

    try:
        dest = check_destination(destination, allowed)  # no API call outside the allow-list
    except InvalidRequest:
        return False
    layout = RunLayout(dest)
    bucket = gcs.bucket(layout.bucket)
    try:
        plan = read_json(bucket, layout.plan.path)
    except gexc.NotFound:
        return False  # no such bucket: nowhere to write
    if plan is not None and plan.get("run_id") != run_id:
        return False
    if plan is None:
        try:
            check_destination(destination, allowed, gcs)
        except InvalidRequest:
            return False
    record = {
        "run_id": run_id,
        "stage": stage,
        "reason": reason[:2000],
        "failed_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    try:
        bucket.blob(layout.failed.path).upload_from_string(
            json.dumps(record, indent=1), content_type="application/json", if_generation_match=0
        )
    except (gexc.PreconditionFailed, gexc.NotFound, gexc.Forbidden):
        return False
    log.error("run %s failed in %s: %s", run_id, stage, reason, extra={"run_id": run_id})
    return True


def announce_once(
    gcs: storage.Client,
    destination: str,
    run_id: str,
    announce: Callable[[], int],
    lease_s: float = claims.DEFAULT_LEASE_S,
) -> bool:
    """Publish a run's chunk messages once, however often its request is delivered; True
    when this call published them."""
    layout = RunLayout.of(destination)
    outcome = claims.once(
        gcs.bucket(layout.bucket),
        layout.announce_claim.path,
        lambda: {"messages": announce()},
        lease_s=lease_s,
        labels={"run_id": run_id},
    )
    return outcome.acted
