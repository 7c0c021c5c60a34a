"""Finishing a run: collect the chunks, check the totals, declare the run complete once.

Each ``ChunkDone`` is recorded as ``_chunks/<chunk>.json`` (overwrite-same, so duplicates are
harmless). The delivery that sees every chunk recorded writes ``_manifest.json`` with a
create-only precondition: exactly one writer wins and the run is declared complete exactly once.
``fetch-complete`` is then published; a ``_published`` marker lets a redelivery publish it if
the winner died in between (consumers dedupe on ``run_id``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from google.api_core import exceptions as gexc
from google.cloud import bigquery, storage

from shared.errors import PermanentError
from shared.fetch.chunks import drop_chunk_tables
from shared.fetch.store import PLAN_OBJECT, read_json
from shared.identifiers import GcsUri
from shared.log import get_logger
from shared.messages import ChunkDone, FetchComplete, FetchRequest

log = get_logger("shared.fetch.finalize")
MANIFEST_OBJECT = "_manifest.json"
PUBLISHED_OBJECT = "_published"
CHUNKS_PREFIX = "_chunks/"


class RowCountMismatch(PermanentError):
    """The parts do not hold exactly the source's rows; the run is not declared complete."""


@dataclass(frozen=True)
class Finalized:
    """What a ``finalize`` call found: still waiting, or complete (and whether to publish)."""

    chunks_recorded: int
    complete: FetchComplete | None = None


def finalize(
    done: ChunkDone, *, gcs: storage.Client, bq: bigquery.Client | None = None
) -> Finalized:
    """Record ``done``; if it was the last chunk, write the manifest and say what to publish.

    With ``bq``, a complete ``chunk_tables`` run's temporary tables are dropped (again, on a
    redelivery: dropping is idempotent, and table expiration catches what a crash leaves).
    """
    dest = GcsUri.parse(done.destination)
    bucket = gcs.bucket(dest.bucket)
    bucket.blob(dest.child(f"{CHUNKS_PREFIX}{done.chunk:05d}.json").path).upload_from_string(
        done.model_dump_json(), content_type="application/json"
    )
    names = list(gcs.list_blobs(dest.bucket, prefix=dest.child(CHUNKS_PREFIX).path))
    if len(names) < done.chunk_count:
        return Finalized(len(names))

    manifest_path = dest.child(MANIFEST_OBJECT).path
    plan = read_json(bucket, dest.child(PLAN_OBJECT).path)
    if plan is None or plan.get("run_id") != done.run_id:
        raise PermanentError(f"run {done.run_id}: no plan at {dest}")
    existing = read_json(bucket, manifest_path)
    if existing is not None:
        _drop_tables(bq, plan)
        return _already_complete(bucket, dest, existing, len(names))

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
    }
    try:
        bucket.blob(manifest_path).upload_from_string(
            json.dumps(manifest, indent=1), content_type="application/json", if_generation_match=0
        )
    except gexc.PreconditionFailed:
        winner = read_json(bucket, manifest_path) or manifest
        return _already_complete(bucket, dest, winner, len(names))
    _delete_stale_parts(gcs, dest, {p.uri for p in parts})
    _drop_tables(bq, plan)
    return Finalized(len(names), _complete_message(dest, manifest))


def _drop_tables(bq: bigquery.Client | None, plan: dict) -> None:
    if bq is not None:
        dropped = drop_chunk_tables(bq, plan)
        if dropped:
            log.info("dropped %d chunk tables", dropped, extra={"run_id": plan["run_id"]})


def _complete_message(dest: GcsUri, manifest: dict) -> FetchComplete:
    return FetchComplete(
        run_id=manifest["run_id"],
        manifest_uri=str(dest.child(MANIFEST_OBJECT)),
        rows=manifest["rows"],
        bytes=manifest["bytes"],
        parts=len(manifest["parts"]),
        train=manifest.get("train", []),
    )


def _already_complete(bucket: storage.Bucket, dest: GcsUri, manifest: dict, n: int) -> Finalized:
    """Another delivery wrote the manifest; publish again only if nobody recorded publishing."""
    if bucket.blob(dest.child(PUBLISHED_OBJECT).path).exists():
        return Finalized(n)
    return Finalized(n, _complete_message(dest, manifest))


def mark_published(gcs: storage.Client, destination: str) -> None:
    """Record that ``fetch-complete`` went out for the run at ``destination``."""
    dest = GcsUri.parse(destination)
    gcs.bucket(dest.bucket).blob(dest.child(PUBLISHED_OBJECT).path).upload_from_string(b"")


def _delete_stale_parts(gcs: storage.Client, dest: GcsUri, keep: set[str]) -> None:
    """Parts an interrupted attempt left behind that the manifest does not list."""
    for blob in gcs.list_blobs(dest.bucket, prefix=dest.child("part-").path):
        if f"gs://{dest.bucket}/{blob.name}" not in keep:
            log.info("deleting stale part %s", blob.name)
            blob.delete()
