"""One reconcile run: read groups and Airflow, diff, apply (or print), remember the digest.

The digest of the desired state is kept on GCS: when a tick finds the same desired state as
the last successful run (and the run is not forced), it stops after the reads, before listing
users or writing anything. Beside it, the ledger of the roles the reconciler owns (created or
adopted as a project's role), so a renamed or removed project's role is retired.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from shared.errors import InvalidRequest, TransientError
from shared.log import get_logger
from shared.rbac.airflow import AirflowClient
from shared.rbac.apply import apply
from shared.rbac.config import RbacConfig
from shared.rbac.groups import GroupsReader
from shared.rbac.lease import Lease
from shared.rbac.ledger import LedgerMissing, RoleLedger, looks_like_ours
from shared.rbac.reconcile import (
    Change,
    ChangesFailed,
    Desired,
    desired_state,
    plan,
    retired_roles,
)

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


class ChangesDeferred(TransientError):
    """Every change that failed, failed on a transient error (after its attempts); the others
    were applied."""


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
    failures: list[str] = field(default_factory=list)  # refused and transient alike
    transient: list[str] = field(default_factory=list)  # of them, failed on a transient error
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
    ledger: RoleLedger | None = None,
    lease: Lease | None = None,
) -> SyncResult:
    """Reconcile Airflow with the groups once; see the module and ``reconcile`` for the rules.
    Without a ``ledger`` only the config's current roles are known to be the reconciler's.
    With a ``lease`` a run that writes holds it from its first read to its last write
    (``LeaseHeld`` naming the holder if another run does); a dry run takes none."""
    if lease is None or dry_run:
        return _sync(config, groups, airflow, dry_run, digests, force, ledger, lambda: None)
    with lease.hold() as renew:
        return _sync(config, groups, airflow, dry_run, digests, force, ledger, renew)


def _sync(
    config: RbacConfig,
    groups: GroupsReader,
    airflow: AirflowClient,
    dry_run: bool,
    digests: DigestStore | None,
    force: bool,
    ledger: RoleLedger | None,
    heartbeat: Callable[[], None],
) -> SyncResult:
    # The groups (Cloud Identity) are read while Airflow's DAGs, roles and permissions are.
    with ThreadPoolExecutor(max_workers=1) as pool:
        reading = pool.submit(groups.read, config.groups())
        dags = airflow.dags()
        roles = airflow.roles()
        existing = airflow.permissions()
        membership = reading.result()
    if config.base_role not in roles:
        raise InvalidRequest(f"base_role: Airflow has no role {config.base_role!r}")
    desired = desired_state(config, membership, dags, roles[config.base_role], existing)
    digest = digest_of(desired)
    result = SyncResult(dry_run=dry_run, desired=desired)
    if ledger is not None and not ledger.exists():
        ours = looks_like_ours(config, roles)
        if ours:
            raise LedgerMissing(
                f"the role ledger {ledger.where} is missing, yet Airflow holds roles that look "
                f"like this reconciler's: {', '.join(f'{r} ({w})' for r, w in ours.items())}. "
                "Without it a renamed or removed project's role is never retired. Record them "
                "again with `retail rbac ledger rebuild --config <config> --state "
                f"{ledger.where}` (a dry run; add --apply, and --role for an old role you "
                "know is the reconciler's), or restore the ledger. Nothing was changed."
            )
    owned = ledger.owned() if ledger is not None else set()
    # A project role that exists and is not the reconciler's is someone's own: taken over
    # only when the config says so (adopt_roles), and never deleted later (not recorded).
    foreign = set(desired.roles) & set(roles) - owned if ledger is not None else set()
    adopting = foreign & set(config.adopt_roles)
    refused = foreign - adopting
    retiring = retired_roles(config, desired, roles, owned)
    if (
        digests is not None
        and not force
        and membership.complete
        and not retiring
        and digests.get() == digest
    ):
        result.unchanged = True
    else:
        users = airflow.users()
        # While a project's role is refused, nothing is retired: its previous role may be
        # the only access its members have.
        planned = plan(config, desired, roles, users, membership, set() if refused else owned,
                       refused)  # fmt: skip
        for role in sorted(adopting):
            planned.notes.append(
                f"adopting existing role {role!r} (holders: {_holders(users, role)}): its "
                "permissions become the project's and holders outside its groups lose it; "
                "it is never deleted by the reconciler"
            )
        result.changes, result.held_back, result.notes = (
            planned.changes,
            planned.held_back,
            planned.notes,
        )
        applied = apply(
            planned.changes,
            airflow,
            roles,
            users,
            desired,
            dry_run=dry_run,
            allow={a.lower() for a in config.allow_list},
            ledger=ledger,
            heartbeat=heartbeat,
            workers=config.max_concurrent_writes,
        )
        result.failures = applied.failures + applied.transient
        result.transient = applied.transient
        if ledger is not None and not dry_run:
            # Recorded but never created (a project removed before its first run).
            never = owned - set(roles) - set(desired.roles)
            if never:
                ledger.discard(never)
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
    if problems and len(result.transient) == len(problems):
        raise ChangesDeferred(
            f"{len(problems)} of {len(result.changes)} change(s) failed on a transient error, "
            "the others were applied (the next run tries them again): " + "; ".join(problems)
        )
    if problems:
        raise ChangesFailed(
            f"{len(problems)} of {len(result.changes) + len(result.conflicts)} change(s) not "
            f"applied, the others were: " + "; ".join(problems)
        )
    return result


def _holders(users: list, role: str, most: int = 10) -> str:
    found = sorted(u.email or u.username for u in users if role in u.roles)
    return (
        ", ".join(found[:most]) + (f" and {len(found) - most} more" if len(found) > most else "")
        or "none"
    )


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
