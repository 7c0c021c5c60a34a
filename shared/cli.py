"""``retail``: the platform's command line for people and scripts.

retail data generate --rows 1000000      generate the synthetic retailer and load it
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from google.api_core import exceptions as gexc

from shared import clients, log
from shared.errors import PlatformError, TransientError
from shared.pubsub import publish_all
from shared.settings import Settings, SettingsError, named_secret

if TYPE_CHECKING:
    from shared.rbac.apply import RoleLedger
    from shared.rbac.config import RbacConfig
    from shared.rbac.lease import Lease


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generate_data(
    rows: int, seed: int, dataset: str, settings: Settings, quiet: bool = False
) -> dict:
    """Generate and load the synthetic retailer; returns what was loaded and the timings."""
    from tqdm import tqdm

    from shared.synthetic.generate import Shape, build_world
    from shared.synthetic.load import load_world

    t0 = time.perf_counter()
    world = build_world(Shape.for_rows(rows), seed)
    with tqdm(
        total=world.expected_rows, unit="rows", unit_scale=True, disable=quiet, file=sys.stderr
    ) as bar:
        report = load_world(
            world,
            dataset=dataset,
            bq=clients.bigquery_client(settings),
            gcs=clients.storage_client(settings),
            bucket=settings.data_bucket,
            on_rows=bar.update,
        )
    seconds = time.perf_counter() - t0
    return {
        "shape": world.shape,
        "rows": report.rows,
        "seconds": seconds,
        "load_seconds": report.load_s,
        "rows_per_s": report.rows["transactions"] / seconds,
        "peak_rss_mb": peak_rss_mb(),
    }


def _cmd_generate(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    dataset = args.dataset or settings.source_dataset.split(".")[1]
    result = generate_data(args.rows, args.seed, dataset, settings, quiet=args.quiet)
    shape = result["shape"]
    print(
        f"{shape.n_stores} stores x {shape.n_products} products x {shape.n_days} days "
        f"into {settings.project}.{dataset}"
    )
    for table, n in result["rows"].items():
        print(f"  {table:<16}{n:>12,} rows")
    print(
        f"  {result['seconds']:.1f} s in all ({result['load_seconds']:.1f} s in load jobs), "
        f"{result['rows_per_s']:,.0f} transaction rows/s, peak RSS {result['peak_rss_mb']:.0f} MB"
    )
    return 0


def _parse_filter(text: str) -> dict:
    """``--where 'units > 0'`` or ``--where 'region in north,south'`` as a predicate dict."""
    import re

    match = re.fullmatch(
        r"\s*(\w+)\s*(not in|in|between|is not null|is null|!=|<=|>=|=|<|>)\s*(.*)", text
    )
    if not match:
        raise ValueError(f"--where {text!r}: expected 'column op value[,value...]'")
    column, op, rest = match.groups()
    values: list = []
    for raw in [v.strip() for v in rest.split(",")] if rest.strip() else []:
        for cast in (int, float):
            try:
                values.append(cast(raw))
                break
            except ValueError:
                continue
        else:
            values.append({"true": True, "false": False}.get(raw.lower(), raw.strip("'\"")))
    return {"column": column, "op": op, "values": values}


def _cmd_fetch(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from shared.errors import RunFailed, RunStalled
    from shared.fetch.library import new_run_id, publish_and_follow, run_in_process
    from shared.fetch.plan import check_destination, check_request
    from shared.messages import FetchRequest, Predicate

    settings = Settings.from_env()
    if args.resume:
        return _resume(args.resume, settings)
    run_id = args.run_id or new_run_id("cli")
    request = FetchRequest(
        run_id=run_id,
        table=args.table,
        query=args.query,
        columns=args.columns.split(",") if args.columns else None,
        row_filter=[Predicate.model_validate(_parse_filter(w)) for w in args.where],
        strategy=args.strategy or ("chunk_tables" if args.query or args.index else "streams"),
        index_columns=args.index.split(",") if args.index else [],
        destination=args.dest or settings.fetch_destination(run_id),
        parallelism=args.parallelism,
    )
    # Fail now, not in a function log: the source, and a destination this run may write to.
    check_request(request, clients.bigquery_client(settings))
    check_destination(
        request.destination, settings.fetch_destinations, clients.storage_client(settings)
    )
    started = time.perf_counter()
    if args.in_process:
        with tqdm(unit="rows", unit_scale=True, file=sys.stderr, disable=args.quiet) as bar:
            manifest = run_in_process(request, settings, on_rows=bar.update)
        rows, size, parts = manifest["rows"], manifest["bytes"], manifest["parts"]
    else:
        try:
            with tqdm(unit="rows", unit_scale=True, file=sys.stderr, disable=args.quiet) as bar:
                manifest = publish_and_follow(
                    request, settings, timeout_s=args.timeout, progress=bar
                )
        except (RunStalled, RunFailed) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        rows, size, parts = manifest["rows"], manifest["bytes"], len(manifest["parts"])
    seconds = time.perf_counter() - started
    print(
        f"run {run_id}: {rows:,} rows in {parts} Parquet parts ({size / 1e6:,.1f} MB) "
        f"at {request.destination} in {seconds:.1f} s ({rows / max(seconds, 1e-9):,.0f} rows/s)"
    )
    return 0


class _RbacState(NamedTuple):
    settings: Settings
    config: RbacConfig
    ledger: RoleLedger | None
    lease: Lease | None


def _rbac_state(args: argparse.Namespace) -> _RbacState:
    """The settings, the config, and the ledger at ``--state`` with the lease beside it."""
    from shared.identifiers import GcsUri
    from shared.rbac.lease import lease_beside
    from shared.rbac.sync import FileRoleLedger, GcsRoleLedger, load_config_from

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
    from shared.rbac.sync import airflow_client, rebuild_ledger

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
        client.set_role(args.role, perms, holders)
        action = "updated"
    else:
        action = "already up to date"
    print(f"role {args.role} {action}: {len(dags)} DAG(s) with prefix {args.dag_prefix!r}")
    for dag in dags:
        print(f"  {dag}")
    return 0


def _resume(destination: str, settings: Settings) -> int:
    """Announce again every unfinished chunk of the run at ``destination``."""
    from shared import topology
    from shared.fetch.resume import pending
    from shared.messages import ChunkDone, ChunkSpec

    messages = pending(clients.storage_client(settings), destination)
    topics = {ChunkSpec: topology.FETCH_CHUNKS, ChunkDone: topology.FETCH_CHUNK_DONE}
    publisher = clients.publisher_client(settings)
    for message in messages:
        topic = topics.get(type(message), topology.FETCH_CHUNK_READY)
        publish_all(publisher, settings.project, settings.topic(topic), [message])
    print(f"{len(messages)} unfinished chunk(s) of {destination} announced again")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="retail", description="Retail data platform CLI")
    sub = parser.add_subparsers(dest="group", required=True)
    data = sub.add_parser("data", help="synthetic retail data").add_subparsers(
        dest="command", required=True
    )
    gen = data.add_parser("generate", help="generate the synthetic retailer and load it")
    gen.add_argument("--rows", type=int, default=1_000_000, help="transaction rows (approx.)")
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument(
        "--dataset", help="default: the environment's source dataset (shared/platform.yaml)"
    )
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    gen.set_defaults(run=_cmd_generate)

    fetch = sub.add_parser(
        "fetch", help="fetch a BigQuery table (or a query's result) into Parquet on GCS"
    )
    fetch.add_argument("table", nargs="?", help="project.dataset.table")
    fetch.add_argument("--query", help="a SELECT to fetch instead of a table (chunk_tables)")
    fetch.add_argument("--strategy", choices=["streams", "chunk_tables"])
    fetch.add_argument("--index", help="comma-separated index columns to split chunk tables on")
    fetch.add_argument("--dest", help="gs:// prefix for the run (default: the data bucket)")
    fetch.add_argument("-p", "--parallelism", type=int, default=8)
    fetch.add_argument("--columns", help="comma-separated columns (default: all)")
    fetch.add_argument(
        "--where", action="append", default=[], help="filter, e.g. 'units > 0' (repeat to AND)"
    )
    fetch.add_argument("--run-id")
    fetch.add_argument(
        "--resume", metavar="DEST", help="announce again the unfinished chunks of the run at DEST"
    )
    fetch.add_argument("--in-process", action="store_true", help="no Pub/Sub: run here")
    fetch.add_argument("--timeout", type=float, default=3600)
    fetch.add_argument("--quiet", action="store_true")
    fetch.set_defaults(run=_cmd_fetch)

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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    log.configure("WARNING")
    try:
        return args.run(args)
    except TransientError as exc:  # worth trying again: EX_TEMPFAIL, not a usage error
        print(f"error (transient, try again): {exc}", file=sys.stderr)
        return 75
    except (SettingsError, ValueError, PlatformError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except gexc.GoogleAPICallError as exc:  # a Google API refused: one line, not a traceback
        print(f"error: {exc.code} {type(exc).__name__}: {exc.message}", file=sys.stderr)
        return 2
