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
    args = parser.parse_args(argv)
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
    if args.report:
        from pathlib import Path

        from shared.training.report import render

        Path(args.report).write_text(render("bench", [r.row() for r in results], scores))
        print(f"report: {args.report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
