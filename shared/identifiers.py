"""BigQuery and GCS names: validated before use, quoted when they go into SQL.

Nothing from a message is ever pasted into SQL unchecked: a name either matches these patterns
or the request is refused with a reason naming it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Project ids: 6-30 chars, lower case, digits, hyphens; optionally domain-scoped ("example.com:p").
_PROJECT = r"(?:[a-z][a-z0-9.-]{0,61}[a-z0-9]:)?[a-z][a-z0-9-]{4,28}[a-z0-9]"
_DATASET = r"[A-Za-z0-9_]{1,1024}"
_TABLE = r"[A-Za-z0-9_][A-Za-z0-9_-]{0,1023}"
_TABLE_RE = re.compile(
    rf"(?:(?P<project>{_PROJECT})\.)?(?P<dataset>{_DATASET})\.(?P<table>{_TABLE})"
)
_COLUMN_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,299}")
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{1,221}[a-z0-9]")
_RUN_ID_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


@dataclass(frozen=True)
class TableRef:
    """A fully qualified BigQuery table."""

    project: str
    dataset: str
    table: str

    @classmethod
    def parse(cls, text: str, default_project: str | None = None) -> TableRef:
        """Parse ``project.dataset.table`` (or ``dataset.table`` with a default project)."""
        match = _TABLE_RE.fullmatch(text or "")
        if not match:
            raise ValueError(f"not a valid BigQuery table name: {text!r}")
        project = match["project"] or default_project
        if not project:
            raise ValueError(f"table {text!r} names no project")
        return cls(project, match["dataset"], match["table"])

    def __str__(self) -> str:
        return f"{self.project}.{self.dataset}.{self.table}"

    @property
    def sql(self) -> str:
        """The name quoted for SQL; safe because every part matched a strict pattern."""
        return f"`{self.project}.{self.dataset}.{self.table}`"

    @property
    def storage_path(self) -> str:
        """The resource path the Storage Read API expects."""
        return f"projects/{self.project}/datasets/{self.dataset}/tables/{self.table}"


def check_column(name: str) -> str:
    """Return ``name`` if it is a plain BigQuery column name, else raise ``ValueError``."""
    if not isinstance(name, str) or not _COLUMN_RE.fullmatch(name):
        raise ValueError(f"not a valid column name: {name!r}")
    return name


def quote_column(name: str) -> str:
    """A column name quoted for SQL."""
    return f"`{check_column(name)}`"


def check_run_id(run_id: str) -> str:
    """Run ids name tables, objects and job ids, so they are short, lower case and plain."""
    if not isinstance(run_id, str) or not _RUN_ID_RE.fullmatch(run_id):
        raise ValueError(f"run id must match {_RUN_ID_RE.pattern}, got {run_id!r}")
    return run_id


@dataclass(frozen=True)
class GcsUri:
    """A ``gs://bucket/prefix`` location."""

    bucket: str
    path: str

    @classmethod
    def parse(cls, text: str) -> GcsUri:
        """Parse ``gs://bucket[/path]``; the path never starts or ends with a slash."""
        if not isinstance(text, str) or not text.startswith("gs://"):
            raise ValueError(f"not a gs:// URI: {text!r}")
        bucket, _, path = text[len("gs://") :].partition("/")
        if not _BUCKET_RE.fullmatch(bucket) or ".." in bucket:
            raise ValueError(f"not a valid bucket name: {bucket!r}")
        path = path.strip("/")
        if any(part in ("", ".", "..") for part in path.split("/")) and path:
            raise ValueError(f"not a valid object path: {path!r}")
        return cls(bucket, path)

    def child(self, name: str) -> GcsUri:
        """The URI of ``name`` below this one."""
        return GcsUri(self.bucket, f"{self.path}/{name}" if self.path else name)

    def __str__(self) -> str:
        return f"gs://{self.bucket}/{self.path}" if self.path else f"gs://{self.bucket}"
