"""A configuration's text from a local path or a ``gs://`` object (the pricing job's rules,
the desk's access mapping)."""

from __future__ import annotations

from google.cloud import storage

from shared.identifiers import GcsUri


def read_text(location: str, gcs: storage.Client) -> str | None:
    """The text at ``location``; None for a ``gs://`` object that does not exist (a missing
    local file raises, as ``open`` does)."""
    if location.startswith("gs://"):
        uri = GcsUri.parse(location)
        blob = gcs.bucket(uri.bucket).get_blob(uri.path)
        return blob.download_as_text() if blob is not None else None
    with open(location, encoding="utf-8") as handle:
        return handle.read()
