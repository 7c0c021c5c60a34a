"""One reconcile run: read groups and Airflow, diff, apply (or print), remember the digest.

The digest of the desired state is kept on GCS: when a tick finds the same desired state as
the last successful run (and the run is not forced), it stops after the reads, before listing
users or writing anything.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from shared.errors import InvalidRequest
from shared.log import get_logger
from shared.rbac.airflow import AirflowClient
from shared.rbac.config import RbacConfig
from shared.rbac.groups import GroupsReader
from shared.rbac.reconcile import Change, ChangesFailed, Desired, apply, desired_state, plan

if TYPE_CHECKING:
    from google.cloud import storage

log = get_logger("shared.rbac.sync")


class DigestStore(Protocol):
    def get(self) -> str | None: ...
    def put(self, digest: str) -> None: ...


class GcsDigest:
    """The last applied desired-state digest, one small object on GCS."""

    def __init__(self, bucket: storage.Bucket, path: str = "rbac/desired-state.sha256") -> None:
        self.blob = bucket.blob(path)

    def get(self) -> str | None:
        from google.api_core import exceptions as gexc

        try:
            return self.blob.download_as_text().strip()
        except gexc.NotFound:
            return None

    def put(self, digest: str) -> None:
        self.blob.upload_from_string(digest, content_type="text/plain")


@dataclass
class SyncResult:
    changes: list[Change] = field(default_factory=list)
    held_back: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unchanged: bool = False
    dry_run: bool = False
    group_calls: int = 0
    airflow_reads: int = 0
    airflow_writes: int = 0
    desired: Desired | None = None
    failures: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


def digest_of(desired: Desired) -> str:
    body = {
        "roles": {r: sorted(map(list, p)) for r, p in sorted(desired.roles.items())},
        "users": {u: sorted(r) for u, r in sorted(desired.users.items())},
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def sync(
    config: RbacConfig,
    *,
    groups: GroupsReader,
    airflow: AirflowClient,
    dry_run: bool = False,
    digests: DigestStore | None = None,
    force: bool = False,
) -> SyncResult:
    """Reconcile Airflow with the groups once; see the module and ``reconcile`` for the rules."""
    membership = groups.read(config.groups())
    dags = airflow.dags()
    roles = airflow.roles()
    existing = airflow.permissions()
    if config.base_role not in roles:
        raise InvalidRequest(f"base_role: Airflow has no role {config.base_role!r}")
    desired = desired_state(config, membership, dags, roles[config.base_role], existing)
    digest = digest_of(desired)
    result = SyncResult(dry_run=dry_run, desired=desired)
    if digests is not None and not force and membership.complete and digests.get() == digest:
        result.unchanged = True
    else:
        users = airflow.users()
        planned = plan(config, desired, roles, users, membership)
        result.changes, result.held_back, result.notes = (
            planned.changes,
            planned.held_back,
            planned.notes,
        )
        result.failures = apply(planned.changes, airflow, roles, users, desired, dry_run=dry_run)
        result.conflicts = planned.conflicts
        # The digest says "nothing to do": only true when every change went through.
        clean = not result.failures and not result.conflicts
        if digests is not None and not dry_run and membership.complete and clean:
            digests.put(digest)
    result.group_calls = membership.calls
    result.airflow_reads, result.airflow_writes = airflow.calls.reads, airflow.calls.writes
    log.info(
        "rbac sync: %d changes%s, %d held back%s",
        len(result.changes),
        " (dry run)" if dry_run else "",
        len(result.held_back),
        ", desired state unchanged" if result.unchanged else "",
        extra={
            "changes": len(result.changes),
            "held_back": len(result.held_back),
            "unchanged": result.unchanged,
            "group_calls": result.group_calls,
            "airflow_reads": result.airflow_reads,
            "airflow_writes": result.airflow_writes,
            "notes": result.notes,
            "failures": result.failures,
            "conflicts": result.conflicts,
        },
    )
    problems = result.failures + [f"conflict: {c}" for c in result.conflicts]
    if problems:
        raise ChangesFailed(
            f"{len(problems)} of {len(result.changes) + len(result.conflicts)} change(s) not "
            f"applied, the others were: " + "; ".join(problems)
        )
    return result


def airflow_client(config: RbacConfig) -> AirflowClient:
    """The Airflow client the config describes (secrets read from the environment)."""
    auth = config.airflow.auth
    if auth.type == "basic":
        return AirflowClient(config.airflow.url, username=auth.username, password=auth.password())
    if auth.type == "bearer":
        return AirflowClient(config.airflow.url, token=auth.token())
    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    return AirflowClient(config.airflow.url, session=AuthorizedSession(credentials))


def load_config_from(location: str, gcs: storage.Client | None = None) -> RbacConfig:
    """The config from a local path or a ``gs://`` object."""
    from shared.identifiers import GcsUri
    from shared.rbac.config import load_config, parse_yaml

    if not location.startswith("gs://"):
        return load_config(location)
    uri = GcsUri.parse(location)
    if gcs is None:
        raise InvalidRequest("a gs:// config needs a storage client")
    text = gcs.bucket(uri.bucket).blob(uri.path).download_as_text()
    return parse_yaml(text, location)
