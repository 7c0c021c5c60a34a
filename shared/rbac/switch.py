"""A role's permissions set exactly, on Airflow 3 in place and on Airflow 2.10 (whose
``PATCH /roles`` only adds) through a stand-in role, without any holder losing access."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from shared.rbac.airflow import AirflowClient, AirflowError, NeedsPerson, Perm, User

# A stand-in role exists only while a role's permissions shrink on Airflow 2 (config role names
# cannot contain "~", so no project's role can collide with one).
STAND_IN = "~next"
T = TypeVar("T")


def set_role(
    client: AirflowClient,
    name: str,
    perms: set[Perm],
    holders: list[User],
    protected: Sequence[User] = (),
    workers: int = 1,
) -> None:
    """Make role ``name`` hold exactly ``perms``. ``holders`` are the users holding it that
    may be written to (their ``roles`` are kept up to date here); ``protected`` hold it too
    and must never be written to.

    PATCH first: Airflow 3 sets the permissions in place, Airflow 2.10 only adds (harmless:
    holders gain the new permissions before anything is taken away). If the role read back
    still has more than ``perms``, Airflow 2.10 can only remove by recreating the role; to
    keep every holder's access through it, a stand-in role with ``perms`` is given to each
    holder first, then the role is recreated and given back, then the stand-in goes. A
    failure at any step leaves each holder with the role or the stand-in (at least
    ``perms``); the next run finishes the switch (the stand-in is retired like any role
    the reconciler owns and no longer wants). Two switches that overlap (a lease
    bypassed or expired) never delete each other's work: the role is read again just
    before its DELETE and left alone if it already holds ``perms``, and a re-create that
    finds it made by the other run with ``perms`` goes on. Holders are written
    ``workers`` at a time, every one of a step before the next step.
    """
    client.patch_role(name, perms)
    if client.role(name) == perms:
        return
    if protected:
        raise NeedsPerson(
            f"role {name!r}: Airflow {client.version} removes permissions only by recreating "
            f"the role, which would take it from {sorted(u.username for u in protected)} "
            "(allow-listed: never written to); take the role from them by hand or take "
            "them off the allow-list (permissions were only added)"
        )
    stand_in = name + STAND_IN
    if client.role(stand_in) is None:
        client.create_role(stand_in, perms)
    else:  # left by an interrupted switch: make sure it holds at least ``perms``
        client.patch_role(stand_in, perms)
    each(holders, lambda user: client.set_user_roles(user, user.roles | {stand_in}), workers)
    # Another run may have finished this switch meanwhile (its role already holds
    # exactly ``perms``): that role is not this run's to delete.
    if client.role(name) != perms:
        client.delete_role(name)
        _create_or_find(client, name, perms)
    each(
        holders, lambda user: client.set_user_roles(user, (user.roles - {stand_in}) | {name}),
        workers,
    )  # fmt: skip
    client.delete_role(stand_in)


def each(
    items: Sequence[T],
    write: Callable[[T], object],
    workers: int,
    before: Callable[[], None] = lambda: None,
) -> None:
    """``write`` every item, ``workers`` at a time, calling ``before`` ahead of each (from
    this thread); returns, or raises the first failure, once every write started has ended
    (a step of a switch ends whole before the next begins)."""
    if workers <= 1:
        for item in items:
            before()
            write(item)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        running = []
        try:
            for item in items:
                before()
                running.append(pool.submit(write, item))
        finally:
            for future in running:
                future.result()


def _create_or_find(client: AirflowClient, name: str, perms: set[Perm]) -> None:
    """Create role ``name``; one that another run created meanwhile with exactly ``perms``
    is as good (anything else is refused as it is)."""
    try:
        client.create_role(name, perms)
    except AirflowError as exc:
        if exc.status != 409 or client.role(name) != perms:
            raise
