"""Resuming a run that stalled: announce again every chunk that has not reported done.

Pub/Sub redelivers a message whose push failed, but a run can still stall (a message
dead-lettered, lost by an emulator when its worker died mid-push). Because part names and row
ranges are deterministic, reading a chunk again from offset 0 rewrites the same parts, and the
finalizer's create-only manifest keeps the run complete once: resuming is always safe.
"""

from __future__ import annotations

from google.cloud import storage

from shared.errors import InvalidRequest
from shared.fetch.layout import RunLayout, read_json, read_plan
from shared.messages import ChunkDone, ChunkReady, ChunkSpec


def pending(gcs: storage.Client, destination: str) -> list[ChunkSpec | ChunkReady | ChunkDone]:
    """The messages that restart every unfinished chunk of the run at ``destination``."""
    run = RunLayout.of(destination)
    bucket = gcs.bucket(run.bucket)
    plan = read_plan(gcs, destination)
    if plan is None:
        raise InvalidRequest(f"no run at {destination} (no plan at {run.plan})")
    if read_json(bucket, run.manifest.path) is not None:
        return []
    done = {
        run.chunk_of_record(b.name)
        for b in gcs.list_blobs(run.bucket, prefix=run.chunk_records_prefix, delimiter="/")
    }
    out: list[ChunkSpec | ChunkReady | ChunkDone] = []
    for i, chunk in enumerate(plan["chunks"]):
        if i in done:
            continue
        if plan.get("strategy") != "chunk_tables":
            out.append(ChunkReady.model_validate(chunk))
            continue
        ready = read_json(bucket, run.ready_record(i).path)
        if ready is None:
            out.append(ChunkSpec.model_validate(chunk))
        elif ready["kind"] == "done":
            out.append(ChunkDone.model_validate(ready["message"]))
        else:
            out.append(ChunkReady.model_validate(ready["message"]))
    return out
