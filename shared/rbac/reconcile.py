"""Reconcile: desired state from groups and config, a pure diff against Airflow, then apply.

``desired_state`` and ``plan`` are pure (no I/O); ``shared.rbac.apply`` makes the calls.
Safety rules live in ``plan``: the allow-list is never changed; if any group could not be
read, nothing is revoked (additions from the groups that were read still go ahead: they are
right whatever the unread groups hold); above the revocation cap nothing is applied at all.

Ownership: the roles the reconciler created are recorded (``owned``, kept by ``sync`` beside
the digest) before they are created. A recorded role no project has any more (the project was
renamed or removed), and any "~next" stand-in left by an interrupted switch, is *retired*:
revoked from everyone (counted against the cap) and then deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.errors import InvalidRequest, PermanentError
from shared.log import get_logger
from shared.rbac.airflow import Perm, User
from shared.rbac.config import RbacConfig, reserved_role_problem
from shared.rbac.groups import Membership
from shared.rbac.switch import STAND_IN

log = get_logger("shared.rbac")

GLOBAL_DAG_RESOURCES = {"DAGs", "DAG Runs"}
# Built-in roles that see every DAG (global can_read on DAGs).
BROAD_ROLES = frozenset({"Admin", "Op", "User", "Viewer"})
DAG_ACTIONS = ("can_read", "can_edit", "can_delete")
DAG_RUN_ACTIONS = ("can_read", "can_create", "can_delete", "menu_access")


class RevocationCapExceeded(PermanentError):
    """More revocations than the config allows in one run: nothing was applied."""


class SelfLockout(PermanentError):
    """The plan would take a role away from the reconciler's own user: nothing was applied."""


class ChangesFailed(PermanentError):
    """Some changes were refused by Airflow or need a person; the others were applied."""


@dataclass(frozen=True)
class Desired:
    roles: dict[str, frozenset[Perm]]
    # email -> {managed role: why}
    users: dict[str, dict[str, str]]
    project_dags: dict[str, list[str]]


@dataclass(frozen=True)
class Change:
    kind: str  # create_role | set_role | create_user | set_user_roles | delete_role
    target: str
    add: frozenset = frozenset()
    remove: frozenset = frozenset()
    why: str = ""

    @property
    def revocations(self) -> int:
        """Roles taken from a user (a stand-in is no access of its own: not counted)."""
        if self.kind != "set_user_roles":
            return 0
        return sum(1 for r in self.remove if not str(r).endswith(STAND_IN))


@dataclass
class Plan:
    changes: list[Change]
    held_back: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Changes a person must resolve (e.g. the username is another person's email).
    conflicts: list[str] = field(default_factory=list)

    @property
    def revocations(self) -> int:
        return sum(c.revocations for c in self.changes)


def project_permissions(
    base: set[Perm], dags: list[str], existing: set[Perm] | None
) -> frozenset[Perm]:
    """The base role without global DAG access, plus per-DAG access to ``dags`` (DAGs that
    exist); with ``existing`` known, only pairs Airflow has."""
    kept = {(a, r) for a, r in base if r not in GLOBAL_DAG_RESOURCES or a == "menu_access"}
    for dag in dags:
        kept |= {(a, f"DAG:{dag}") for a in DAG_ACTIONS}
        kept |= {(a, f"DAG Run:{dag}") for a in DAG_RUN_ACTIONS}
    return frozenset(p for p in kept if existing is None or p in existing)


def desired_state(
    config: RbacConfig,
    membership: Membership,
    dags: dict[str, set[str]],
    base: set[Perm],
    existing: set[Perm] | None,
) -> Desired:
    """What Airflow should look like; an unknown DAG id named in the config is an error."""
    roles: dict[str, frozenset[Perm]] = {}
    users: dict[str, dict[str, str]] = {}
    project_dags: dict[str, list[str]] = {}
    selected_by: dict[str, list[str]] = {}
    for name, project in config.projects.items():
        for dag, tags in dags.items():
            if project.dags.matches(dag, tags):
                selected_by.setdefault(dag, []).append(name)
    overlap = sorted(
        d for d, ps in selected_by.items() if len(ps) > 1 and d not in config.shared_dags
    )
    if overlap:
        names = " and ".join(f"projects.{p}" for p in selected_by[overlap[0]])
        raise InvalidRequest(
            f"DAG {overlap[0]!r} is selected by {names}"
            + (f" ({len(overlap)} DAGs in all)" if len(overlap) > 1 else "")
            + "; narrow the selectors, or list it in shared_dags if both should see it"
        )
    for name, project in config.projects.items():
        missing = [d for d in project.dags.ids if d not in dags]
        if missing:
            raise InvalidRequest(
                f"projects.{name}.dags.ids: DAG {missing[0]!r} does not exist in Airflow"
            )
        selected = sorted(d for d, projects in selected_by.items() if name in projects)
        project_dags[name] = selected
        roles[project.role] = project_permissions(base, selected, existing)
        for group in project.groups:
            for email in membership.members.get(group, set()):
                users.setdefault(email, {}).setdefault(project.role, f"member of {group}")
    for group in config.admin_groups:
        for email in membership.members.get(group, set()):
            users.setdefault(email, {})[config.admin_role] = f"member of admin group {group}"
    return Desired(roles, users, project_dags)


def retired_roles(
    config: RbacConfig, desired: Desired, actual_roles: dict[str, set[Perm]], owned: set[str]
) -> set[str]:
    """Roles in Airflow the reconciler owns and no project wants: recorded as created by it
    (``owned``) or a stand-in. Airflow's own roles and the admin and base roles never are."""
    return {
        role
        for role in actual_roles
        if (role in owned or role.endswith(STAND_IN))
        and role not in desired.roles
        and role not in (config.admin_role, config.base_role)
        and reserved_role_problem(role) is None
    }


def plan(
    config: RbacConfig,
    desired: Desired,
    actual_roles: dict[str, set[Perm]],
    actual_users: list[User],
    membership: Membership,
    owned: set[str] = frozenset(),  # type: ignore[assignment]
    refused: set[str] = frozenset(),  # type: ignore[assignment]
) -> Plan:
    """The changes that make Airflow match ``desired``, with the safety rules applied.
    ``refused``: project roles that exist, are someone else's and may not be adopted: left
    alone (neither rewritten nor granted nor revoked), each a conflict naming its holders."""
    retired = retired_roles(config, desired, actual_roles, owned)
    # An adopted role is managed while listed in adopt_roles, wanted by a project or not: its
    # holders are the project's members, and nobody once no project wants it.
    adopted = set(config.adopt_roles) & set(actual_roles)
    managed = (config.managed_roles - refused) | retired | adopted
    own = config.own_identity
    allow = set(config.allow_list)
    changes: list[Change] = []
    conflicts: list[str] = []
    for role in sorted(refused):
        holders = sorted(u.email or u.username for u in actual_users if role in u.roles)
        conflicts.append(
            f"role {role!r} exists and was not created by the reconciler (holders: "
            f"{', '.join(holders[:10]) or 'none'}{' ...' if len(holders) > 10 else ''}): "
            "adopting it would rewrite its permissions and take it from holders outside the "
            "project's groups; list it in adopt_roles to adopt it (left untouched)"
        )
    for role, perms in sorted(desired.roles.items()):
        have = actual_roles.get(role)
        if role in refused:
            continue
        if have is None:
            changes.append(Change("create_role", role, add=perms, why="project role"))
        elif have != perms:
            changes.append(
                Change(
                    "set_role",
                    role,
                    add=frozenset(perms - have),
                    remove=frozenset(have - perms),
                    why="project DAGs or base role changed",
                )
            )
    accounts_of: dict[str, list[User]] = {}
    for account in actual_users:
        if account.email:
            accounts_of.setdefault(account.person, []).append(account)
    by_username = {u.username.lower(): u for u in actual_users}
    seeing_all: list[str] = []
    twins: list[str] = []
    for email, wanted in sorted(desired.users.items()):
        want = {r: w for r, w in wanted.items() if r not in refused}
        if email in allow:
            continue
        accounts = accounts_of.get(email, [])
        if not accounts and email in by_username:
            other = by_username[email]
            conflicts.append(
                f"{email}: the Airflow user named {other.username!r} has the email "
                f"{other.email!r}; a person must merge or rename them (nothing written)"
            )
            continue
        if not accounts and not want:
            continue  # wanted only a role that is left alone: no account made for nothing
        if not accounts:
            why = "; ".join(f"{r}: {w}" for r, w in sorted(want.items()))
            changes.append(Change("create_user", email, add=frozenset(want), why=why))
            continue
        if len(accounts) > 1:
            twins.append(f"{email} ({', '.join(sorted(a.username for a in accounts))})")
        # Every account of the person gets exactly the person's roles: a twin keeps neither
        # another project's role nor a built-in one the policy takes away.
        for user in accounts:
            new = (user.roles - managed) | set(want)
            broad = (user.roles & BROAD_ROLES) - set(want)
            if broad:
                who = email if user.username.lower() == email else f"{email} as {user.username}"
                seeing_all.append(f"{who} ({', '.join(sorted(broad))})")
                if config.builtin_roles_of_members == "remove":
                    new -= broad
            if new != user.roles:
                add, remove = new - user.roles, user.roles - new
                why = "; ".join(
                    [f"{r}: {want[r]}" for r in sorted(add)]
                    + [
                        f"{r}: built-in role seeing every DAG (builtin_roles_of_members: remove)"
                        if r in broad
                        else f"{r}: {_retired_why(r)}"
                        if r in retired
                        else f"{r}: no longer in its groups"
                        for r in sorted(remove)
                    ]
                )
                changes.append(
                    Change("set_user_roles", user.username, frozenset(add), frozenset(remove), why)
                )
    outsiders: list[str] = []
    for user in actual_users:
        if user.person in desired.users or allow_listed(user, allow):
            continue
        remove = user.roles & managed
        broad = (user.roles & BROAD_ROLES) - managed
        if broad:
            outsiders.append(f"{user.email or user.username} ({', '.join(sorted(broad))})")
            if config.builtin_roles_of_members == "remove":
                remove |= broad
        if remove:
            # Whoever loses a built-in role keeps what a new user gets, never nothing.
            stripped = remove & broad and not user.roles - remove
            add = {config.registration_role} if stripped else set()
            changes.append(
                Change(
                    "set_user_roles",
                    user.username,
                    add=frozenset(add - user.roles),
                    remove=frozenset(remove),
                    why="in none of the configured groups"
                    if not remove & retired
                    else "; ".join(f"{r}: {_retired_why(r)}" for r in sorted(remove & retired)),
                )
            )
    for role in sorted(retired):
        kept_by = sorted(
            u.username for u in actual_users if role in u.roles and allow_listed(u, allow)
        )
        if kept_by:
            conflicts.append(
                f"role {role!r} ({_retired_why(role)}) is held by allow-listed {kept_by}, "
                "whom the reconciler never writes to; take it from them by hand (not deleted)"
            )
            continue
        changes.append(Change("delete_role", role, why=_retired_why(role)))
    for change in changes:
        if own and change.remove and change.kind == "set_user_roles":
            holder = by_username.get(change.target.lower())
            if change.target.lower() == own or (holder and holder.person == own):
                raise SelfLockout(
                    f"the plan would remove {sorted(change.remove)} from the reconciler's own "
                    f"user {change.target!r}; put it in an admin group or allow_list. Nothing "
                    "was applied"
                )
    result = Plan(changes, conflicts=conflicts)
    if twins:
        result.notes.append(
            f"{len(twins)} person(s) with more than one Airflow account, each account given "
            f"the person's roles: {', '.join(twins[:20])}" + (" ..." if len(twins) > 20 else "")
        )
    if outsiders:
        result.notes.append(
            f"{len(outsiders)} user(s) in no configured group can see DAGs through a built-in "
            f"role: {', '.join(outsiders[:20])}"
            + (" ..." if len(outsiders) > 20 else "")
            + (
                f"; they keep only {config.registration_role}"
                if config.builtin_roles_of_members == "remove"
                else "; set builtin_roles_of_members: remove to leave them only "
                f"{config.registration_role}"
            )
        )
    if seeing_all:
        action = {
            "remove": "their broad roles are removed",
            "keep": "kept (builtin_roles_of_members: keep)",
            "report": "set builtin_roles_of_members: remove to take them away",
        }[config.builtin_roles_of_members]
        result.notes.append(
            f"{len(seeing_all)} group-managed user(s) can see DAGs outside their projects "
            f"through a built-in role: {', '.join(seeing_all[:20])}"
            + (" ..." if len(seeing_all) > 20 else "")
            + f"; {action}"
        )
    if not membership.complete:
        # Unknown membership: a removal might be wrong. Keep the additions, hold the removals.
        kept, held = [], []
        for change in changes:
            if change.remove or change.kind == "delete_role":
                held.append(change)
                if change.add:
                    kept.append(Change(change.kind, change.target, change.add, why=change.why))
            else:
                kept.append(change)
        notes = result.notes
        result = Plan(kept, held, notes=notes, conflicts=conflicts)
        result.notes.append(
            "groups not read: "
            + ", ".join(sorted(membership.failed))
            + f"; {len(held)} change(s) with revocations held back, additions applied"
        )
    if result.revocations > config.max_revocations:
        raise RevocationCapExceeded(
            f"{result.revocations} revocations planned, above max_revocations="
            f"{config.max_revocations}; nothing applied (raise the cap if this is intended)"
        )
    return result


def allow_listed(user: User, allow: set[str]) -> bool:
    """Whether ``user`` is on the allow-list (lower-cased emails or usernames)."""
    return user.person in allow or user.username.lower() in allow


def _retired_why(role: str) -> str:
    if role.endswith(STAND_IN):
        return "stand-in left by an interrupted role switch"
    return "owned by the reconciler, no project's role any more (project renamed or removed)"
