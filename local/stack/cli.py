"""``python -m local up|down|status|env|redrive``: the stack's command line and its entry point
(the one place that reads the stack's variables from the process environment)."""

from __future__ import annotations

import argparse
import os
import sys

from local.stack.commands import down, status, up
from local.stack.config import StackConfig, StackError
from local.stack.operations import dead_letters, deliveries, recent_runs, redrive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["up", "down", "status", "env", "redrive"])
    parser.add_argument(
        "--env",
        help="deployed environment the stack stands for (shared/platform.yaml; default "
        "RETAIL_ENV or dev): its names, prefix and each deployable's variables",
    )
    args = parser.parse_args(argv)
    try:
        cfg = StackConfig.from_env()
        marker = cfg.state_dir / "environment"
        if args.env:
            cfg = cfg.with_environment(args.env)
        elif not os.environ.get("RETAIL_ENV") and marker.exists():
            cfg = cfg.with_environment(marker.read_text().strip())  # the one this stack runs
        if args.command == "up":
            print(f"starting local stack in {cfg.state_dir}")
            up(cfg)
            print(f"ready; for the clients: source {cfg.state_dir / 'env'}")
        elif args.command == "down":
            down(cfg)
        elif args.command == "redrive":
            counts = redrive(cfg)
            print(", ".join(f"{n} to {t}" for t, n in counts.items()) or "nothing to redrive")
        elif args.command == "env":
            for key, value in cfg.client_env().items():
                print(f"export {key}={value}")
        else:
            rows = status(cfg)
            width = max(len(name) for name, _, _ in rows) + 2
            for name, state, detail in rows:
                print(f"{name:<{width}}{state:<11}{detail}")
            if all(state == "up" for _, state, _ in rows):
                for function, n in deliveries(cfg).items():
                    print(
                        f"{'push ' + function:<{width}}{n['delivered']:<11}"
                        f"acked {n['acked']}, refused with 429 {n['refused_429']} "
                        f"(serves {n['capacity']} at once, peak {n['peak']})"
                    )
                letters = dead_letters(cfg)
                detail = ", ".join(f"{n} from {sub}" for sub, n in sorted(letters.items()))
                waiting = sum(letters.values())
                print(f"{'dead-letter':<{width}}{waiting:<11}{detail or 'none waiting'}")
                for run in recent_runs(cfg):
                    print(f"{'run ' + str(run.run_id):<{width}}{run.state:<11}{run.detail}")
                return 0
            return 3
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
