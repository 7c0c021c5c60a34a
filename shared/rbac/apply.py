"""Applying a reconcile plan to Airflow: the writes, in an order that never takes access away
in passing, each role the reconciler creates recorded (``RoleLedger``) before it is created."""

from __future__ import annotations

from typing import Protocol

from shared.log import get_logger
from shared.rbac.airflow import AirflowClient, AirflowError, Perm, User
from shared.rbac.reconcile import Change, Desired, allow_listed

log = get_logger("shared.rbac")


class RoleLedger(Protocol):
    """The roles the reconciler created (recorded before each is created)."""

    def owned(self) -> set[str]: ...
    def add(self, roles: set[str]) -> None: ...
    def discard(self, roles: set[str]) -> None: ...


def apply(
    changes: list[Change],
    client: AirflowClient,
    actual_roles: dict[str, set[Perm]],
    actual_users: list[User],
    desired: Desired,
    *,
    dry_run: bool = False,
    allow: set[str] = frozenset(),  # type: ignore[assignment]
    ledger: RoleLedger | None = None,
) -> list[str]:
    """Make the calls for ``changes`` (none with ``dry_run``); one log line per change. A
    change Airflow refuses is reported (who, what, Airflow's error) and the others still
    apply; returns the failures. Users in ``allow`` (emails or usernames) are never written
    to; a role is recorded in ``ledger`` before it is created and dropped after it is deleted.
    """
    users = {u.username: u for u in actual_users}
    failures: list[str] = []
    for change in changes:
        log.info(
            "%s%s %s: +%s -%s (%s)",
            "[dry run] " if dry_run else "",
            change.kind,
            change.target,
            sorted(map(str, change.add)) if change.kind.endswith("user_roles") else len(change.add),
            sorted(map(str, change.remove))
            if change.kind.endswith("user_roles")
            else len(change.remove),
            change.why,
            extra={
                "change": change.kind,
                "target": change.target,
                "why": change.why,
                "dry_run": dry_run,
            },
        )
        if dry_run:
            continue
        try:
            _apply_one(change, client, actual_roles, actual_users, users, desired, allow, ledger)
        except AirflowError as exc:
            failures.append(f"{change.kind} {change.target}: {exc}")
            log.error("%s %s failed: %s", change.kind, change.target, exc,
                      extra={"change": change.kind, "target": change.target})  # fmt: skip
    return failures


def _apply_one(
    change: Change,
    client: AirflowClient,
    actual_roles: dict[str, set[Perm]],
    actual_users: list[User],
    users: dict[str, User],
    desired: Desired,
    allow: set[str],
    ledger: RoleLedger | None,
) -> None:
    if change.kind == "create_role":
        if ledger is not None:
            ledger.add({change.target})
        client.create_role(change.target, set(desired.roles[change.target]))
    elif change.kind == "delete_role":
        client.delete_role(change.target)
        if ledger is not None:
            ledger.discard({change.target})
    elif change.kind == "set_role":
        holders = [u for u in actual_users if change.target in u.roles]
        protected = [u for u in holders if allow_listed(u, allow)]
        perms = (actual_roles[change.target] | change.add) - change.remove
        client.set_role(change.target, perms, [u for u in holders if u not in protected], protected)
    elif change.kind == "create_user":
        client.create_user(change.target, set(change.add))
    elif change.kind == "set_user_roles":
        user = users[change.target]
        roles = (user.roles | change.add) - change.remove
        client.set_user_roles(user, roles)
