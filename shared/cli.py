"""``retail``: the platform's command line for people and scripts.

retail data generate --rows 1000000      generate the synthetic retailer and load it
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

from google.api_core import exceptions as gexc

from shared import clients, log
from shared.errors import PlatformError, TransientError
from shared.pubsub import publish_all
from shared.rbac.commands import add_rbac_commands
from shared.settings import Settings, SettingsError


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

    add_rbac_commands(sub)
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
