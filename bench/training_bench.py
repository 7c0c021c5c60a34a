"""Pricing model benchmark on the synthetic retailer, whose true elasticities are known.

    .venv/bin/python -m bench.training_bench [--rows 1000000]

Prints the accuracy of the elasticity estimates against the truth (median absolute error,
95% interval coverage, flagged products) and the process-pool speedup of the same fit with
1 and 2 workers, side by side in one run.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from pathlib import Path

# One BLAS thread per process, set before numpy loads: the speedup measured is the pool's.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import pyarrow as pa


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--report", help="also write the run report (HTML) to this path")
    parser.add_argument(
        "--tasks",
        type=int,
        default=4,
        help="also simulate 1 and N Cloud Run tasks on Parquet parts (peak RSS per task)",
    )
    parser.add_argument("--one-task", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one_task:
        return _one_task(*args.one_task)
    from shared.synthetic.generate import Shape, build_world, transactions
    from shared.training.pricing_job import fit_in_pool

    world = build_world(Shape.for_rows(args.rows), args.seed)
    table = pa.Table.from_batches(list(transactions(world)))
    truth = dict(
        zip(
            world.truth["product_id"].to_pylist(),
            world.truth["true_elasticity"].to_pylist(),
            strict=True,
        )
    )
    print(f"{table.num_rows:,} transaction rows, {len(truth)} products\n")
    timings = {}
    results = None
    for workers in (1, 2):
        t0 = time.perf_counter()
        results = fit_in_pool(table, workers)
        timings[workers] = time.perf_counter() - t0
    ok = [r for r in results if r.status == "ok"]
    errors = np.array([abs(r.elasticity - truth[r.product_id]) for r in ok])
    covered = np.mean([r.ci_low <= truth[r.product_id] <= r.ci_high for r in ok])
    print(f"{'measure':<44}{'value':>10}  target")
    print(f"{'products estimated / flagged':<44}{len(ok):>6} / {len(results) - len(ok):<3}")
    print(f"{'  flags':<44}{dict(Counter(r.status for r in results if r.status != 'ok'))}")
    print(f"{'median |elasticity error|':<44}{np.median(errors):>10.3f}  <= 0.15")
    print(f"{'true value inside the 95% interval':<44}{covered:>10.1%}  >= 90%")
    print(f"{'fit, 1 worker (s)':<44}{timings[1]:>10.2f}")
    print(f"{'fit, 2 workers (s)':<44}{timings[2]:>10.2f}")
    print(f"{'process-pool speedup':<44}{timings[1] / timings[2]:>9.2f}x  >= 1.7x")

    from shared.training.promotions import evaluate, promotion_rows

    scores = evaluate(promotion_rows(table, world.promotions))
    better = 1 - scores["model_wape"] / scores["naive_wape"]
    total = scores["train_promotions"] + scores["holdout_promotions"]
    holdout = f"{scores['holdout_promotions']:.0f} of {total:.0f}"
    print(f"{'promotions in the time-based holdout':<44}{holdout:>10}")
    for name in ("wape", "mape"):
        model, naive = scores[f"model_{name}"], scores[f"naive_{name}"]
        label = f"promotion model {name.upper()} / naive"
        print(f"{label:<44}{model:>10.3f} / {naive:.3f}")
    print(f"{'WAPE better than naive by':<44}{better:>10.1%}  >= 30%")
    if args.tasks > 1:
        _simulate_tasks(table, args.tasks)
    if args.report:
        from shared.training.report import render

        Path(args.report).write_text(render("bench", [r.row() for r in results], scores))
        print(f"report: {args.report}")
    return 0


def _one_task(parts_dir: str, index: str, count: str) -> int:
    """One simulated Cloud Run task: read its shard of the parts, fit on 2 workers."""
    import json

    import pyarrow.fs as pafs

    from bench.fetch_bench import peak_rss_mb
    from shared.training.dataset import Shard, read_shard
    from shared.training.pricing_job import COLUMNS, fit_in_pool

    manifest = {"parts": [{"uri": str(p)} for p in sorted(Path(parts_dir).glob("*.parquet"))]}
    t0 = time.perf_counter()
    shard = read_shard(manifest, Shard(int(index), int(count)), pafs.LocalFileSystem(), COLUMNS)
    results = fit_in_pool(shard, 2)
    print(
        json.dumps(
            {
                "rows": shard.num_rows,
                "products": len(results),
                "seconds": time.perf_counter() - t0,
                # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent.
                "peak_mb": peak_rss_mb(),
            }
        )
    )
    return 0


def _simulate_tasks(table: pa.Table, tasks: int) -> None:
    """1 task vs ``tasks`` tasks over the same Parquet parts, each task in its own process."""
    import json
    import subprocess
    import sys
    import tempfile

    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory() as tmp:
        for i, start in enumerate(range(0, table.num_rows, 200_000)):
            pq.write_table(table.slice(start, 200_000), f"{tmp}/part-{i:05d}.parquet")
        print(f"\n{'tasks':>6}{'task':>6}{'rows':>12}{'products':>10}{'wall s':>8}{'peak MB':>9}")
        for count in (1, tasks):
            for index in range(count):
                out = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "bench.training_bench",
                        "--one-task",
                        tmp,
                        str(index),
                        str(count),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                r = json.loads(out.stdout.strip().splitlines()[-1])
                print(
                    f"{count:>6}{index:>6}{r['rows']:>12,}{r['products']:>10}"
                    f"{r['seconds']:>8.2f}{r['peak_mb']:>9.0f}",
                    flush=True,
                )


if __name__ == "__main__":
    raise SystemExit(main())
