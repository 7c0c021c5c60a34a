"""``retail rbac ...``: reconcile Airflow with the groups, rebuild the ledger, the old tool's
single role."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from shared import clients
from shared.settings import Settings, named_secret

if TYPE_CHECKING:
    from shared.rbac.config import RbacConfig
    from shared.rbac.lease import Lease
    from shared.rbac.ledger import RoleLedger


class _RbacState(NamedTuple):
    settings: Settings
    config: RbacConfig
    ledger: RoleLedger | None
    lease: Lease | None


def _rbac_state(args: argparse.Namespace) -> _RbacState:
    """The settings, the config, and the ledger at ``--state`` with the lease beside it."""
    from shared.identifiers import GcsUri
    from shared.rbac.lease import lease_beside
    from shared.rbac.ledger import FileRoleLedger, GcsRoleLedger
    from shared.rbac.sync import load_config_from

    on_gcs = [a for a in (args.config, args.state) if a and a.startswith("gs://")]
    settings = Settings.from_env(project_required=bool(on_gcs))
    gcs = clients.storage_client(settings) if on_gcs else None
    config = load_config_from(args.config, gcs)
    if not args.state:
        return _RbacState(settings, config, None, None)
    if args.state.startswith("gs://"):
        uri = GcsUri.parse(args.state)
        bucket = gcs.bucket(uri.bucket)  # type: ignore[union-attr]
        ledger = GcsRoleLedger(bucket, uri.path)
        return _RbacState(settings, config, ledger, lease_beside(uri.path, bucket))
    return _RbacState(settings, config, FileRoleLedger(args.state), lease_beside(args.state))


def _cmd_rbac_sync(args: argparse.Namespace) -> int:
    from shared.rbac.groups import GroupsReader
    from shared.rbac.sync import airflow_client, sync

    settings, config, ledger, lease = _rbac_state(args)
    if ledger is None:
        print(
            "note: no --state: this run takes no lease (it may overlap the scheduled "
            "function's) and retires no renamed project's role"
        )
    result = sync(
        config,
        groups=GroupsReader(clients.cloud_identity_service(settings)),
        airflow=airflow_client(config),
        dry_run=args.dry_run,
        ledger=ledger,
        lease=lease,
    )
    rows = [
        (
            c.kind,
            c.target,
            ", ".join(sorted(map(_perm, c.add))),
            ", ".join(sorted(map(_perm, c.remove))),
            c.why,
        )
        for c in result.changes
    ]
    _table(("change", "target", "add", "remove", "why"), rows)
    for note in result.notes:
        print(f"note: {note}")
    verb = "planned (dry run)" if args.dry_run else "applied"
    print(
        f"{len(result.changes)} change(s) {verb}, {len(result.held_back)} held back; "
        f"{result.group_calls} Groups API calls, {result.airflow_reads} Airflow reads, "
        f"{result.airflow_writes} Airflow writes"
    )
    return 0


def _cmd_rbac_ledger_rebuild(args: argparse.Namespace) -> int:
    """Record again the roles that are the reconciler's (a dry run unless ``--apply``)."""
    from shared.rbac.ledger import rebuild_ledger
    from shared.rbac.sync import airflow_client

    _, config, ledger, lease = _rbac_state(args)
    assert ledger is not None and lease is not None  # --state is required
    airflow = airflow_client(config)
    if args.apply:
        with lease.hold():
            found = rebuild_ledger(config, airflow, ledger, args.role, apply=True)
    else:
        found = rebuild_ledger(config, airflow, ledger, args.role)
    _table(("role", "why"), sorted(found.items()))
    if args.apply:
        print(f"{len(found)} role(s) recorded in {ledger.where} as the reconciler's")
    else:
        print(
            f"{len(found)} role(s) would be recorded in {ledger.where} (dry run: add --apply; "
            "--role ROLE for an old role of the reconciler's that no rule above names)"
        )
    return 0


def _perm(value: object) -> str:
    if isinstance(value, tuple):
        action, resource = value
        return f"{action} on {resource}"
    return str(value)


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]], width: int = 60) -> None:
    cut = [tuple(c if len(c) <= width else c[: width - 1] + "…" for c in row) for row in rows]
    sizes = [max([len(h), *(len(r[i]) for r in cut)]) for i, h in enumerate(header)]
    print("  ".join(h.ljust(n) for h, n in zip(header, sizes, strict=True)))
    for row in cut:
        print("  ".join(c.ljust(n) for c, n in zip(row, sizes, strict=True)))


def _cmd_rbac_role(args: argparse.Namespace) -> int:
    """The old tool's single-role mode: ROLE gets the DAGs whose id starts with the prefix."""

    from shared.rbac.airflow import AirflowClient
    from shared.rbac.config import reserved_role_problem
    from shared.rbac.reconcile import project_permissions
    from shared.rbac.switch import set_role

    problem = reserved_role_problem(args.role, (args.base_role,))
    if problem:
        raise ValueError(f"-r {problem}")
    if args.user:
        password = named_secret(args.password_env)
        if not password:
            raise ValueError(f"--user needs the password in ${args.password_env}")
        client = AirflowClient(args.url, username=args.user, password=password)
    else:
        token = args.token or named_secret("AIRFLOW_TOKEN")
        if token == "-":
            token = sys.stdin.readline().strip()
        if not token:
            raise ValueError("give -t TOKEN ('-t -' reads stdin; or $AIRFLOW_TOKEN) or --user")
        client = AirflowClient(args.url, token=token)
    roles = client.roles()
    if args.base_role not in roles:
        raise ValueError(f"Airflow has no role {args.base_role!r} to start from")
    dags = sorted(d for d in client.dags() if d.startswith(args.dag_prefix))
    perms = set(project_permissions(roles[args.base_role], dags, client.permissions()))
    if args.role not in roles:
        client.create_role(args.role, perms)
        action = "created"
    elif roles[args.role] != perms:
        holders = [u for u in client.users() if args.role in u.roles]
        set_role(client, args.role, perms, holders)
        action = "updated"
    else:
        action = "already up to date"
    print(f"role {args.role} {action}: {len(dags)} DAG(s) with prefix {args.dag_prefix!r}")
    for dag in dags:
        print(f"  {dag}")
    return 0


def add_rbac_commands(sub: argparse._SubParsersAction) -> None:
    """``retail rbac sync | ledger rebuild | role``."""
    rbac = sub.add_parser("rbac", help="Airflow roles from Google Groups").add_subparsers(
        dest="command", required=True
    )
    rsync = rbac.add_parser("sync", help="reconcile Airflow with the groups in a config")
    rsync.add_argument("--config", required=True, help="rbac.yaml (a path or gs:// URI)")
    rsync.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    rsync.add_argument(
        "--state",
        help="the ledger of roles the reconciler owns, a JSON path or gs://bucket/path (the "
        "function keeps gs://<data bucket>/rbac/owned-roles.json); the run holds the lease "
        "beside it (lease.json on GCS, <state>.lock locally), so it never overlaps another "
        "run sharing that state; without it, a removed project's role is not retired",
    )
    rsync.set_defaults(run=_cmd_rbac_sync)
    ledger = rbac.add_parser("ledger", help="the ledger of roles the reconciler owns")
    ledger_sub = ledger.add_subparsers(dest="action", required=True)
    rebuild = ledger_sub.add_parser(
        "rebuild",
        help="record again the roles that look like the reconciler's (a project's role, one "
        "matching role_pattern, those named with --role); a dry run unless --apply",
    )
    rebuild.add_argument("--config", required=True, help="rbac.yaml (a path or gs:// URI)")
    rebuild.add_argument("--state", required=True, help="the ledger, as for sync --state")
    rebuild.add_argument("--role", action="append", default=[], help="also record this role")
    rebuild.add_argument("--apply", action="store_true", help="write the ledger")
    rebuild.set_defaults(run=_cmd_rbac_ledger_rebuild)
    role = rbac.add_parser("role", help="one role for the DAGs with a prefix (the old tool)")
    role.add_argument("-u", "--url", required=True, help="Airflow base URL")
    role.add_argument("-r", "--role", required=True)
    role.add_argument("-t", "--token", help="bearer token ('-' reads it from stdin)")
    role.add_argument("-d", "--dag-prefix", required=True)
    role.add_argument("--user", help="basic auth user instead of a token")
    role.add_argument("--password-env", default="AIRFLOW_PASSWORD", help="holds --user's password")
    role.add_argument("--base-role", default="Viewer")
    role.set_defaults(run=_cmd_rbac_role)
