"""Finishing a run: collect the chunks, check the totals, declare the run complete once.

Each ``ChunkDone`` is recorded as a chunk record (overwrite-same, so duplicates are harmless;
names in :mod:`shared.fetch.layout`). The delivery that sees every chunk recorded writes the
manifest with a create-only precondition: exactly one writer wins and the run is declared
complete exactly once. The manifest writer then publishes ``fetch-complete`` through a claim
(:mod:`shared.claims`). Other deliveries that find the manifest
never publish while the writer may still be at work: they wait for the claim's result, and only
when the manifest is older than the lease with nothing recorded (the writer died) do they go
through the claim themselves, so one of them publishes.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from google.api_core import exceptions as gexc
from google.cloud import bigquery, storage

from shared import claims
from shared.errors import PermanentError
from shared.fetch.chunks import drop_chunk_tables
from shared.fetch.layout import RunLayout, read_json
from shared.log import get_logger
from shared.messages import ChunkDone, FetchComplete, FetchRequest

log = get_logger("shared.fetch.finalize")


class RowCountMismatch(PermanentError):
    """The parts do not hold exactly the source's rows; the run is not declared complete."""


@dataclass(frozen=True)
class Finalized:
    """What a ``finalize`` call found: still waiting, or complete; ``complete`` is set for the
    call that declared the run complete, ``published`` when this call published it."""

    chunks_recorded: int
    complete: FetchComplete | None = None
    published: bool = False


Publish = Callable[[FetchComplete], str]


def finalize(
    done: ChunkDone,
    *,
    gcs: storage.Client,
    bq: bigquery.Client | None = None,
    publish: Publish | None = None,
    lease_s: float = claims.DEFAULT_LEASE_S,
) -> Finalized:
    """Record ``done``; if it was the last chunk, write the manifest and, with ``publish``
    (returns the message id), publish ``fetch-complete`` exactly once.

    With ``bq``, a complete ``chunk_tables`` run's temporary tables are dropped (again, on a
    redelivery: dropping is idempotent, and table expiration catches what a crash leaves).
    """
    run = RunLayout.of(done.destination)
    bucket = gcs.bucket(run.bucket)
    bucket.blob(run.chunk_record(done.chunk).path).upload_from_string(
        done.model_dump_json(), content_type="application/json"
    )
    names = [
        b
        for b in gcs.list_blobs(run.bucket, prefix=run.chunk_records_prefix, delimiter="/")
        if run.chunk_of_record(b.name) is not None
    ]
    if len(names) < done.chunk_count:
        return Finalized(len(names))

    manifest_path = run.manifest.path
    plan = read_json(bucket, run.plan.path)
    if plan is None or plan.get("run_id") != done.run_id:
        raise PermanentError(f"run {done.run_id}: no plan at {run.dest}")
    existing = read_json(bucket, manifest_path)
    if existing is not None:
        _drop_tables(bq, plan)
        return _announce(bucket, run, existing, len(names), publish, lease_s, writer=False)

    chunks = sorted(
        (ChunkDone.model_validate_json(blob.download_as_bytes()) for blob in names),
        key=lambda c: c.chunk,
    )
    parts = [part for chunk in chunks for part in chunk.parts]
    rows = sum(p.rows for p in parts)
    if rows != plan["source_rows"]:
        raise RowCountMismatch(
            f"run {done.run_id}: parts hold {rows} rows, the source has {plan['source_rows']}"
        )
    request = FetchRequest.model_validate(plan["request"])
    manifest = {
        "run_id": done.run_id,
        "source": plan["table"],
        "strategy": plan.get("strategy", "streams"),
        "snapshot_time": plan["snapshot_time"],
        "schema": plan["schema"],
        "rows": rows,
        "bytes": sum(p.bytes for p in parts),
        "parts": [p.model_dump() for p in parts],
        "train": request.train,
        "completed_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    try:
        bucket.blob(manifest_path).upload_from_string(
            json.dumps(manifest, indent=1), content_type="application/json", if_generation_match=0
        )
    except gexc.PreconditionFailed:
        winner = read_json(bucket, manifest_path) or manifest
        return _announce(bucket, run, winner, len(names), publish, lease_s, writer=False)
    _delete_stale_parts(gcs, run, {p.uri for p in parts})
    _drop_tables(bq, plan)
    return _announce(bucket, run, manifest, len(names), publish, lease_s, writer=True)


def _drop_tables(bq: bigquery.Client | None, plan: dict) -> None:
    if bq is not None:
        dropped = drop_chunk_tables(bq, plan)
        if dropped:
            log.info("dropped %d chunk tables", dropped, extra={"run_id": plan["run_id"]})


def _complete_message(run: RunLayout, manifest: dict) -> FetchComplete:
    return FetchComplete(
        run_id=manifest["run_id"],
        manifest_uri=str(run.manifest),
        rows=manifest["rows"],
        bytes=manifest["bytes"],
        parts=len(manifest["parts"]),
        train=manifest.get("train", []),
    )


def _announce(
    bucket: storage.Bucket,
    run: RunLayout,
    manifest: dict,
    n: int,
    publish: Publish | None,
    lease_s: float,
    *,
    writer: bool,
) -> Finalized:
    """Publish ``fetch-complete`` once: the manifest writer does; another delivery only after
    the writer had a lease's time and recorded nothing."""
    message = _complete_message(run, manifest)
    if publish is None:
        return Finalized(n, message if writer else None)
    claim = run.publish_claim.path
    if not writer:
        completed = dt.datetime.fromisoformat(manifest.get("completed_at") or "1970-01-01+00:00")
        while time.time() - completed.timestamp() < lease_s:
            if claims.result_of(bucket, claim) is not None:
                return Finalized(n)
            time.sleep(0.2)
    outcome = claims.once(
        bucket,
        claim,
        lambda: {"message_id": publish(message), "run_id": message.run_id},
        lease_s=lease_s,
        labels={"run_id": message.run_id},
    )
    return Finalized(n, message if writer else None, published=outcome.acted)


def _delete_stale_parts(gcs: storage.Client, run: RunLayout, keep: set[str]) -> None:
    """Parts an interrupted attempt left behind that the manifest does not list."""
    # Only this run's own objects: direct children named like its parts (never a deeper
    # prefix that happens to start with "part-").
    for blob in gcs.list_blobs(run.bucket, prefix=run.parts_prefix, delimiter="/"):
        if not run.is_part(blob.name):
            continue
        if f"gs://{run.bucket}/{blob.name}" not in keep:
            log.info("deleting stale part %s", blob.name)
            blob.delete()
