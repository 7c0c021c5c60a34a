"""One reconcile run: read groups and Airflow, diff, apply (or print), remember the digest.

The digest of the desired state is kept on GCS: when a tick finds the same desired state as
the last successful run (and the run is not forced), it stops after the reads, before listing
users or writing anything. Beside it, the ledger of the roles the reconciler owns (created or
adopted as a project's role), so a renamed or removed project's role is retired.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from shared.errors import InvalidRequest, PermanentError, TransientError
from shared.log import get_logger
from shared.rbac.airflow import STAND_IN, AirflowClient
from shared.rbac.apply import RoleLedger, apply
from shared.rbac.config import RbacConfig, reserved_role_problem
from shared.rbac.groups import GroupsReader
from shared.rbac.lease import Lease
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


class LedgerUnreadable(PermanentError):
    """The ledger of owned roles cannot be read: the run stops rather than guess which roles
    are the reconciler's to retire."""


def parse_ledger(text: str | bytes, where: str) -> set[str]:
    """The roles of a ledger's ``{"roles": [...]}``; ``LedgerUnreadable`` naming ``where`` and
    how to repair it when it is not that (a truncated write, a hand edit)."""
    try:
        found = json.loads(text)
        roles = found["roles"]
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise ValueError("'roles' is not a list of role names")
    except (ValueError, KeyError, TypeError) as exc:
        raise LedgerUnreadable(
            f"the role ledger {where} is unreadable ({type(exc).__name__}: {exc}). It records "
            'which Airflow roles this reconciler created; restore it from a copy as {"roles": '
            '["<role>", ...]} listing the project roles it made. No role is created or '
            "retired until it reads."
        ) from None
    return set(roles)


class LedgerMissing(PermanentError):
    """The ledger of owned roles is gone while Airflow holds roles that look like the
    reconciler's: retiring nothing would leave a renamed project's role with its holders."""


class _JsonRoleLedger:
    """The ledger as ``{"roles": [...]}`` in one object; every update is a read-modify-write
    that only lands on the version it read (two runs at once both land, one after the other)."""

    def _read(self) -> tuple[set[str], int]:
        raise NotImplementedError

    def _write(self, roles: set[str], version: int) -> bool:
        raise NotImplementedError

    def owned(self) -> set[str]:
        return self._read()[0]

    def exists(self) -> bool:
        raise NotImplementedError

    def _update(self, change: Callable[[set[str]], set[str]]) -> None:
        for _ in range(20):
            roles, version = self._read()
            new = change(set(roles))
            if new == roles or self._write(new, version):
                return
        raise RuntimeError("the role ledger kept changing under this run; try again")

    def add(self, roles: set[str]) -> None:
        self._update(lambda have: have | roles)

    def discard(self, roles: set[str]) -> None:
        self._update(lambda have: have - roles)


class GcsRoleLedger(_JsonRoleLedger):
    """The ledger on GCS beside the digest, updated with generation preconditions."""

    def __init__(self, bucket: storage.Bucket, path: str = "rbac/owned-roles.json") -> None:
        self.bucket, self.path = bucket, path

    @property
    def where(self) -> str:
        return f"gs://{self.bucket.name}/{self.path}"

    def exists(self) -> bool:
        return self.bucket.get_blob(self.path) is not None

    def _read(self) -> tuple[set[str], int]:
        blob = self.bucket.get_blob(self.path)
        if blob is None:
            return set(), 0
        roles = parse_ledger(blob.download_as_bytes(), self.where)
        return roles, int(blob.generation)

    def _write(self, roles: set[str], version: int) -> bool:
        from google.api_core import exceptions as gexc

        try:
            self.bucket.blob(self.path).upload_from_string(
                json.dumps({"roles": sorted(roles)}),
                content_type="application/json",
                if_generation_match=version,
            )
        except gexc.PreconditionFailed:
            return False
        return True


class FileRoleLedger(_JsonRoleLedger):
    """The ledger in a local file (the CLI's ``--state``); one writer at a time. Written to a
    temporary file beside it, flushed to disk, then renamed over it: a crash leaves the old
    ledger or the new one, never half of one."""

    def __init__(self, path: str) -> None:
        from pathlib import Path

        self.file = Path(path)

    @property
    def where(self) -> str:
        return str(self.file)

    def exists(self) -> bool:
        return self.file.exists()

    def _read(self) -> tuple[set[str], int]:
        if not self.file.exists():
            return set(), 0
        return parse_ledger(self.file.read_bytes(), str(self.file)), 0

    def _write(self, roles: set[str], version: int) -> bool:
        import os
        import tempfile

        fd, temporary = tempfile.mkstemp(prefix=f".{self.file.name}.", dir=self.file.parent)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(json.dumps({"roles": sorted(roles)}))
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.file)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        return True


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


def looks_like_ours(config: RbacConfig, roles: dict[str, set]) -> dict[str, str]:
    """Roles in Airflow that look like the reconciler's, each with why: a project's role
    (not one listed to be adopted), one matching ``role_pattern``, a stand-in."""
    import re

    found: dict[str, str] = {}
    projects = {p.role: name for name, p in config.projects.items()}
    for role in sorted(roles):
        if role in (config.admin_role, config.base_role) or reserved_role_problem(role):
            continue
        if STAND_IN in role:
            found[role] = "a role switch's stand-in"
        elif role in projects and role not in config.adopt_roles:
            found[role] = f"project {projects[role]}'s role"
        elif config.role_pattern and re.fullmatch(config.role_pattern, role):
            found[role] = f"matches role_pattern {config.role_pattern!r}"
    return found


def rebuild_ledger(
    config: RbacConfig,
    airflow: AirflowClient,
    ledger: RoleLedger,
    also: list[str] = (),  # type: ignore[assignment]
    apply: bool = False,
) -> dict[str, str]:
    """The roles to record as the reconciler's again, each with why: those that look like its
    own (``looks_like_ours``, stand-ins aside: a stand-in is retired anyway) and ``also``,
    roles a person names (e.g. a renamed project's old role). Recorded only with ``apply``;
    a role named in ``also`` that Airflow does not have is an error."""
    roles = airflow.roles()
    missing = [r for r in also if r not in roles]
    if missing:
        raise InvalidRequest(f"--role: Airflow has no role {missing[0]!r}")
    found = {r: w for r, w in looks_like_ours(config, roles).items() if STAND_IN not in r}
    for role in also:
        problem = reserved_role_problem(role, (config.admin_role, config.base_role))
        if problem:
            raise InvalidRequest(f"--role: {problem}")
        found.setdefault(role, "named on the command line")
    if apply and found:
        ledger.add(set(found))
    return found


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
