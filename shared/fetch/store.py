"""Small JSON records a run keeps beside its data on GCS (plan, chunk records, manifest)."""

from __future__ import annotations

import json

from google.api_core import exceptions as gexc
from google.cloud import storage

from shared.identifiers import GcsUri

PLAN_OBJECT = "_plan.json"


def read_json(bucket: storage.Bucket, name: str) -> dict | None:
    """The JSON object ``name`` in ``bucket``, or None if there is none."""
    try:
        return json.loads(bucket.blob(name).download_as_bytes())
    except gexc.NotFound:
        return None


def read_plan(gcs: storage.Client, destination: str) -> dict | None:
    """The recorded plan of the run writing to ``destination``, if any."""
    dest = GcsUri.parse(destination)
    return read_json(gcs.bucket(dest.bucket), dest.child(PLAN_OBJECT).path)
