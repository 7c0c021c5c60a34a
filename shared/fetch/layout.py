"""Where a fetch run keeps everything on GCS: the one module that names a run's objects.

A run writes below its destination ``gs://bucket/prefix``::

    _plan.json                    the plan (create-only: the run's identity)
    _claims/announce.json         chunk messages published once
    _claims/chunk-<c>.json        a chunk table announced once (strategy chunk_tables)
    _claims/fetch-complete.json   fetch-complete published once
    _ready/<c>.json               a chunk table made: the message that reads it
    _chunks/<c>.json              a chunk reported done (its parts)
    part-<c>-<k>.parquet          rows [k*P, (k+1)*P) of chunk c's stream
    _manifest.json                the answer when complete (create-only)
    _failed.json                  the answer when failed, with stage and reason (create-only)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from google.api_core import exceptions as gexc
from google.cloud import storage

from shared.identifiers import GcsUri

PLAN = "_plan.json"
MANIFEST = "_manifest.json"
FAILED = "_failed.json"
_ANNOUNCE_CLAIM = "_claims/announce.json"
_CHUNK_RECORDS = "_chunks/"
_READY = "_ready/"
_PARTS = "part-"
_CHUNK_RECORD_NAME = re.compile(r"(\d{5})\.json")
_PART_NAME = re.compile(r"part-\d{5}-\d{5}\.parquet")


@dataclass(frozen=True)
class RunLayout:
    """The names of every object of the run writing to ``dest``."""

    dest: GcsUri

    @classmethod
    def of(cls, destination: str | GcsUri) -> RunLayout:
        """The layout of the run at ``destination`` (``gs://bucket/prefix``)."""
        dest = destination if isinstance(destination, GcsUri) else GcsUri.parse(destination)
        return cls(dest)

    @property
    def bucket(self) -> str:
        return self.dest.bucket

    @property
    def plan(self) -> GcsUri:
        return self.dest.child(PLAN)

    @property
    def manifest(self) -> GcsUri:
        return self.dest.child(MANIFEST)

    @property
    def failed(self) -> GcsUri:
        return self.dest.child(FAILED)

    @property
    def announce_claim(self) -> GcsUri:
        return self.dest.child(_ANNOUNCE_CLAIM)

    @property
    def publish_claim(self) -> GcsUri:
        return self.dest.child("_claims/fetch-complete.json")

    def chunk_claim(self, chunk: int) -> GcsUri:
        return self.dest.child(f"_claims/chunk-{chunk:05d}.json")

    def ready_record(self, chunk: int) -> GcsUri:
        return self.dest.child(f"{_READY}{chunk:05d}.json")

    def chunk_record(self, chunk: int) -> GcsUri:
        return self.dest.child(f"{_CHUNK_RECORDS}{chunk:05d}.json")

    @property
    def chunk_records_prefix(self) -> str:
        """The object-name prefix to list the chunk records with (``delimiter="/"``)."""
        return self.dest.child(_CHUNK_RECORDS).path

    @staticmethod
    def chunk_of_record(name: str) -> int | None:
        """The chunk a chunk record's object name stands for; None for anything else."""
        found = _CHUNK_RECORD_NAME.fullmatch(name.rsplit("/", 1)[-1])
        return int(found.group(1)) if found else None

    def part(self, chunk: int, part: int) -> GcsUri:
        """Part ``part`` of chunk ``chunk``: a deterministic name, so a rewrite overwrites it."""
        return self.dest.child(f"part-{chunk:05d}-{part:05d}.parquet")

    @property
    def parts_prefix(self) -> str:
        """The object-name prefix to list the parts with (``delimiter="/"``)."""
        return self.dest.child(_PARTS).path

    @staticmethod
    def is_part(name: str) -> bool:
        """Whether an object name is a part (not a folder that starts with ``part-``)."""
        return bool(_PART_NAME.fullmatch(name.rsplit("/", 1)[-1]))

    @staticmethod
    def before_plan(name: str) -> bool:
        """Objects a destination may hold before its run is planned: a failure recorded while
        planning and the announcement claim of a delivery that died before writing the plan."""
        return name.endswith((f"/{FAILED}", f"/{_ANNOUNCE_CLAIM}"))

    @staticmethod
    def plan_of(directory: str) -> str:
        """The plan's object name of a run whose destination path is ``directory``."""
        return f"{directory}/{PLAN}"

    @staticmethod
    def is_plan(name: str) -> bool:
        return name.endswith(f"/{PLAN}")

    @staticmethod
    def destination_of_manifest(uri: GcsUri) -> GcsUri:
        """The run's destination, from its manifest's URI or the destination itself."""
        if uri.path.endswith(f"/{MANIFEST}") or uri.path == MANIFEST:
            return GcsUri(uri.bucket, uri.path[: -len(MANIFEST)].rstrip("/"))
        return uri


def read_json(bucket: storage.Bucket, name: str) -> dict | None:
    """The JSON object ``name`` in ``bucket``, or None if there is none."""
    try:
        return json.loads(bucket.blob(name).download_as_bytes())
    except gexc.NotFound:
        return None


def read_plan(gcs: storage.Client, destination: str) -> dict | None:
    """The recorded plan of the run writing to ``destination``, if any."""
    layout = RunLayout.of(destination)
    return read_json(gcs.bucket(layout.bucket), layout.plan.path)
