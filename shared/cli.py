"""``retail``: the platform's command line for people and scripts.

retail data generate --rows 1000000      generate the synthetic retailer and load it
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

from shared import clients, log
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
    result = generate_data(args.rows, args.seed, args.dataset, settings, quiet=args.quiet)
    shape = result["shape"]
    print(
        f"{shape.n_stores} stores x {shape.n_products} products x {shape.n_days} days "
        f"into {settings.project}.{args.dataset}"
    )
    for table, n in result["rows"].items():
        print(f"  {table:<16}{n:>12,} rows")
    print(
        f"  {result['seconds']:.1f} s in all ({result['load_seconds']:.1f} s in load jobs), "
        f"{result['rows_per_s']:,.0f} transaction rows/s, peak RSS {result['peak_rss_mb']:.0f} MB"
    )
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
    gen.add_argument("--dataset", default="retail")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    gen.set_defaults(run=_cmd_generate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    log.configure("WARNING")
    try:
        return args.run(args)
    except (SettingsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
