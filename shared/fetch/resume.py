"""Resuming a run that stalled: announce again every chunk that has not reported done.

Pub/Sub redelivers a message whose push failed, but a run can still stall (a message
dead-lettered, lost by an emulator when its worker died mid-push). Because part names and row
ranges are deterministic, reading a chunk again from offset 0 rewrites the same parts, and the
finalizer's create-only manifest keeps the run complete once: resuming is always safe.
"""

from __future__ import annotations

from google.cloud import storage

from shared.errors import InvalidRequest
from shared.fetch.chunks import READY_PREFIX
from shared.fetch.finalize import CHUNKS_PREFIX, MANIFEST_OBJECT
from shared.fetch.store import read_json, read_plan
from shared.identifiers import GcsUri
from shared.messages import ChunkDone, ChunkReady, ChunkSpec


def pending(gcs: storage.Client, destination: str) -> list[ChunkSpec | ChunkReady | ChunkDone]:
    """The messages that restart every unfinished chunk of the run at ``destination``."""
    dest = GcsUri.parse(destination)
    bucket = gcs.bucket(dest.bucket)
    plan = read_plan(gcs, destination)
    if plan is None:
        raise InvalidRequest(f"no run at {destination} (no _plan.json)")
    if read_json(bucket, dest.child(MANIFEST_OBJECT).path) is not None:
        return []
    done = {
        int(b.name.rsplit("/", 1)[-1].split(".")[0])
        for b in gcs.list_blobs(dest.bucket, prefix=dest.child(CHUNKS_PREFIX).path, delimiter="/")
    }
    out: list[ChunkSpec | ChunkReady | ChunkDone] = []
    for i, chunk in enumerate(plan["chunks"]):
        if i in done:
            continue
        if plan.get("strategy") != "chunk_tables":
            out.append(ChunkReady.model_validate(chunk))
            continue
        ready = read_json(bucket, dest.child(f"{READY_PREFIX}{i:05d}.json").path)
        if ready is None:
            out.append(ChunkSpec.model_validate(chunk))
        elif ready["kind"] == "done":
            out.append(ChunkDone.model_validate(ready["message"]))
        else:
            out.append(ChunkReady.model_validate(ready["message"]))
    return out
