"""The fetch fan-out against the fetch function's capacity, on the stack that answers 429.

    .venv/bin/python -m bench.fanout_bench [--rows 200000] [--rate 0.25]

For dev's and prod's fetch capacity (max instances x requests per instance, from
``shared/platform.yaml``) it runs a fetch of 8, 32 and 128 streams, beside one with as many
streams as instances, and prints per run: the wall time, the deliveries, those refused with
429 (each a failed attempt Pub/Sub retries after its backoff) and the dead letters. Every read
connection is capped at ``--rate`` MB/s by the stack's read proxy, so a delivery lasts seconds,
as a chunk does deployed (minutes there), and the function's capacity is what bounds the run.
The stack is the local one at its scale: backoff 1-10 s (600 s deployed), 15 attempts.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PORTS = {
    "RETAIL_STACK_DIR": str(REPO / ".local" / "bench-fanout"),
    "RETAIL_PUBSUB_PORT": "28085",
    "RETAIL_BQ_REST_PORT": "29050",
    "RETAIL_BQ_GRPC_PORT": "29060",
    "RETAIL_BQ_READ_PORT": "29061",
    "RETAIL_GCS_PORT": "24443",
    "RETAIL_FUNCTIONS_BASE_PORT": "28101",
    "RETAIL_CLOUD_IDENTITY_PORT": "28095",
    "RETAIL_CLOUD_RUN_PORT": "28096",
    "RETAIL_API_PORT": "28097",
    "RETAIL_SECRET_MANAGER_PORT": "28098",
    "RETAIL_PUSH_RELAY_PORT": "28099",
    "RETAIL_ENV": "dev",
    # Streams up to 128 whatever the environment caps them at; small parts, so the part
    # writes of one delivery are many and short.
    "RETAIL_MAX_STREAMS": "128",
    "RETAIL_PART_MAX_ROWS": "2000",
}


def run(cfg, settings, table: str, streams: int) -> dict:
    from local.stack import dead_letters
    from local.stack.operations import deliveries
    from shared.fetch.library import new_run_id, publish_and_follow
    from shared.messages import FetchRequest

    before, letters = deliveries(cfg)["fetch_chunk"], sum(dead_letters(cfg).values())
    run_id = new_run_id("fanout")
    request = FetchRequest(
        run_id=run_id,
        table=table,
        destination=settings.fetch_destination(run_id),
        parallelism=streams,
    )
    started = time.perf_counter()
    try:
        manifest = publish_and_follow(request, settings, timeout_s=1800, poll_s=0.2)
        error = ""
    except Exception as exc:  # a run that does not complete is a result here, not a crash
        manifest, error = {}, f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - started
    after = deliveries(cfg)["fetch_chunk"]
    return {
        "seconds": seconds,
        "rows": manifest.get("rows", 0),
        "delivered": after["delivered"] - before["delivered"],
        "refused": after["refused_429"] - before["refused_429"],
        "peak": after["peak"],
        "dead": sum(dead_letters(cfg).values()) - letters,
        "error": error,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout_bench", description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000, help="transactions in the table")
    parser.add_argument("--rate", type=float, default=0.25, help="MB/s per read connection")
    parser.add_argument("--streams", default="8,32,128", help="stream counts to run")
    args = parser.parse_args(argv)

    from local.stack import StackConfig, down, function_component, up
    from local.stack.processes import _stop
    from local.storage_proxy import Limits, write_control
    from shared.cli import generate_data
    from shared.platform import function_shape
    from shared.settings import Settings

    cfg = StackConfig.from_env(PORTS)
    print(f"starting a stack in {cfg.state_dir} ...", flush=True)
    up(cfg, say=lambda _m: None)
    settings = Settings.from_env(cfg.client_env())
    try:
        generate_data(args.rows, 7, cfg.names.dataset("source"), settings, quiet=True)
        table = f"{settings.source_dataset}.transactions"
        # Sessions as wide as asked (the emulator stops at 10 streams), every connection capped.
        limits = Limits(bandwidth_bytes_s=args.rate * 1e6, split_to_requested=True)
        write_control(cfg.read_proxy_control, limits)
        header = (
            f"{'environment':<12}{'capacity':>14}{'streams':>9}{'run s':>8}{'x base':>8}"
            f"{'deliveries':>12}{'429s':>7}{'peak':>6}{'dead letters':>14}  rows"
        )
        print(f"\n{args.rows:,} rows, reads capped at {args.rate} MB/s a connection\n{header}")
        for env_name in ("dev", "prod"):
            instances, concurrency = function_shape("fetch_chunk", env_name)
            capacity = instances * concurrency
            _stop(cfg, function_component("fetch_chunk"))
            shaped = dataclasses.replace(cfg, capacities=(("fetch_chunk", capacity),))
            up(shaped, say=lambda _m: None)
            wanted = [instances, *(int(n) for n in args.streams.split(","))]
            base = None
            for streams in dict.fromkeys(wanted):
                r = run(shaped, settings, table, streams)
                base = base or r["seconds"]
                label = f"{instances} x {concurrency}"
                note = "  (streams = instances)" if streams == instances else ""
                print(
                    f"{env_name:<12}{label:>14}{streams:>9}{r['seconds']:>8.1f}"
                    f"{r['seconds'] / base:>8.2f}{r['delivered']:>12}{r['refused']:>7}"
                    f"{r['peak']:>6}{r['dead']:>14}  {r['rows']:,}{note}"
                    + (f"  {r['error']}" if r["error"] else ""),
                    flush=True,
                )
    finally:
        write_control(cfg.read_proxy_control, None)
        down(cfg, say=lambda _m: None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
