"""The ledger of the roles the reconciler owns (created or recorded again by a person), kept
beside the desired-state digest: without it a renamed or removed project's role could not be
told from an admin's own, so it is never guessed: unreadable or lost, the run stops and says
how to repair it (``retail rbac ledger rebuild``)."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from shared.errors import InvalidRequest, PermanentError
from shared.rbac.airflow import AirflowClient
from shared.rbac.config import RbacConfig, reserved_role_problem
from shared.rbac.switch import STAND_IN

if TYPE_CHECKING:
    from google.cloud import storage


class RoleLedger(Protocol):
    """The roles the reconciler created (recorded before each is created)."""

    @property
    def where(self) -> str: ...  # where it is kept, for messages

    def owned(self) -> set[str]: ...
    def exists(self) -> bool: ...
    def add(self, roles: set[str]) -> None: ...
    def discard(self, roles: set[str]) -> None: ...


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


def looks_like_ours(config: RbacConfig, roles: dict[str, set]) -> dict[str, str]:
    """Roles in Airflow that look like the reconciler's, each with why: a project's role
    (not one listed to be adopted), one matching ``role_pattern``, a stand-in."""
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
