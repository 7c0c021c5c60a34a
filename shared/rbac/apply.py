"""Applying a reconcile plan to Airflow: the writes, in an order that never takes access away
in passing, each role the reconciler creates recorded (``RoleLedger``) before it is created."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.errors import TransientError
from shared.log import get_logger
from shared.rbac.airflow import AirflowClient, AirflowError, Perm, User
from shared.rbac.ledger import RoleLedger
from shared.rbac.reconcile import Change, Desired, allow_listed
from shared.rbac.switch import each, set_role

log = get_logger("shared.rbac")
USER_KINDS = frozenset({"create_user", "set_user_roles"})


@dataclass
class Applied:
    """What ``apply`` could not do: refused by Airflow (or needing a person), and failed on a
    transient error (5xx, a dropped connection) after its attempts."""

    failures: list[str] = field(default_factory=list)
    transient: list[str] = field(default_factory=list)


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
    attempts: int = 3,
    backoff_s: float = 0.5,
    heartbeat: Callable[[], None] = lambda: None,
    workers: int = 1,
) -> Applied:
    """Make the calls for ``changes`` (none with ``dry_run``); one log line per change. A
    change Airflow refuses is reported (who, what, Airflow's error) and the others still
    apply. A change that fails on a transient error is tried again (``attempts`` in all,
    waiting ``backoff_s``, doubling), then reported the same way: one user's failing web
    request stops no other change. A role switch is not tried again in the run: its state
    has moved, and the next run resumes it from what Airflow holds. Users in ``allow``
    (emails or usernames) are never written to; a role is recorded in ``ledger`` before it is
    created and dropped after it is deleted. Users' changes go ``workers`` at a time (roles
    are created or switched before, and deleted after, them). ``heartbeat`` is called before
    each change (the lease's renewal: it raises when the lease was lost, and no change is
    made after).
    """
    users = {u.username: u for u in actual_users}
    outcomes: dict[int, tuple[str, str]] = {}  # change index -> (refused, transient)

    def one(index: int, change: Change) -> None:
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
            return
        tries = 1 if change.kind == "set_role" else attempts
        for attempt in range(1, tries + 1):
            try:
                _apply_one(
                    change, client, actual_roles, actual_users, users, desired, allow, ledger,
                    workers,
                )  # fmt: skip
                return
            except AirflowError as exc:
                outcomes[index] = (f"{change.kind} {change.target}: {exc}", "")
                log.error("%s %s failed: %s", change.kind, change.target, exc,
                          extra={"change": change.kind, "target": change.target})  # fmt: skip
                return
            except TransientError as exc:
                if attempt < tries:
                    time.sleep(backoff_s * 2 ** (attempt - 1))
                    continue
                said = f"after {tries} attempts: " if tries > 1 else ""
                outcomes[index] = ("", f"{change.kind} {change.target}: {said}{exc}")
                log.error("%s %s failed %s%s", change.kind, change.target, said, exc,
                          extra={"change": change.kind, "target": change.target})  # fmt: skip

    # Roles first (a grant needs its role): the new ones recorded in the ledger before any
    # is created, then created ``workers`` at a time, then switched one by one; then every
    # user's change, independent of each other, ``workers`` at a time; then the deletions
    # (after the roles were taken away).
    indexed = list(enumerate(changes))
    creating = {c.target for c in changes if c.kind == "create_role"}
    if creating and ledger is not None and not dry_run:
        ledger.add(creating)
    for kinds in ({"create_role"}, {"set_role"}, USER_KINDS, {"delete_role"}):
        one_by_one = kinds & {"set_role", "delete_role"}
        each(
            [(i, c) for i, c in indexed if c.kind in kinds],
            lambda indexed_change: one(*indexed_change),
            1 if one_by_one else workers,
            before=(lambda: None) if dry_run else heartbeat,
        )
    applied = Applied()
    for index in sorted(outcomes):
        refused, transient = outcomes[index]
        if refused:
            applied.failures.append(refused)
        if transient:
            applied.transient.append(transient)
    return applied


def _apply_one(
    change: Change,
    client: AirflowClient,
    actual_roles: dict[str, set[Perm]],
    actual_users: list[User],
    users: dict[str, User],
    desired: Desired,
    allow: set[str],
    ledger: RoleLedger | None,
    workers: int,
) -> None:
    if change.kind == "create_role":  # recorded in the ledger before (see ``apply``)
        client.create_role(change.target, set(desired.roles[change.target]))
    elif change.kind == "delete_role":
        client.delete_role(change.target)
        if ledger is not None:
            ledger.discard({change.target})
    elif change.kind == "set_role":
        holders = [u for u in actual_users if change.target in u.roles]
        protected = [u for u in holders if allow_listed(u, allow)]
        perms = (actual_roles[change.target] | change.add) - change.remove
        writable = [u for u in holders if u not in protected]
        set_role(client, change.target, perms, writable, protected, workers)
    elif change.kind == "create_user":
        client.create_user(change.target, set(change.add))
    elif change.kind == "set_user_roles":
        user = users[change.target]
        roles = (user.roles | change.add) - change.remove
        client.set_user_roles(user, roles)
