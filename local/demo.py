"""The main job on the local stack: ``python -m local.demo`` (``make demo``).

Starts the stack, generates and loads the synthetic retailer, sends a fetch request through
Pub/Sub to ``plan_fetch`` and shows what came out the other side, sends a malformed message and
shows it rejected and acknowledged, then stops the stack (``--keep`` leaves it running).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
import uuid
from pathlib import Path

from local.stack import StackConfig, StackError, down, up


def function_log_lines(cfg: StackConfig, entry_point: str, needle: str) -> list[dict]:
    """JSON log lines of a function process that mention ``needle``."""
    path = cfg.log_dir / f"function-{entry_point}.log"
    lines = []
    for raw in Path(path).read_text(errors="replace").splitlines():
        if needle in raw and raw.startswith("{"):
            with contextlib.suppress(ValueError):
                lines.append(json.loads(raw))
    return lines


def wait_for(predicate, timeout_s: float = 30.0, every_s: float = 0.2):  # noqa: ANN001, ANN201
    """Poll ``predicate`` until it returns something truthy; returns it, or its last answer
    (one more look at the deadline) on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    return predicate()


def round_trip(cfg: StackConfig, table: str, parallelism: int = 4) -> dict:
    """Publish a fetch request; collect the chunk-ready messages plan_fetch publishes."""
    from shared import clients, topology
    from shared.messages import ChunkReady, FetchRequest, dump, parse
    from shared.settings import Settings

    settings = Settings.from_env(cfg.client_env())
    publisher = clients.publisher_client(settings)
    subscriber = clients.subscriber_client(settings)
    run_id = f"demo-{uuid.uuid4().hex[:8]}"
    tap = subscriber.subscription_path(settings.project, f"demo-tap-{run_id}")
    subscriber.create_subscription(
        name=tap, topic=publisher.topic_path(settings.project, topology.FETCH_CHUNK_READY)
    )
    request = FetchRequest(
        run_id=run_id,
        table=table,
        columns=["date", "store_id", "product_id", "units", "price"],
        row_filter=[{"column": "units", "op": ">", "values": [0]}],
        destination=f"gs://{settings.data_bucket}/fetch/{run_id}",
        parallelism=parallelism,
    )
    t0 = time.perf_counter()
    publisher.publish(
        publisher.topic_path(settings.project, topology.FETCH_REQUESTS), dump(request)
    ).result()
    chunks: dict[int, ChunkReady] = {}

    def collect() -> bool:
        response = subscriber.pull(subscription=tap, max_messages=100, timeout=5)
        if response.received_messages:
            subscriber.acknowledge(
                subscription=tap, ack_ids=[m.ack_id for m in response.received_messages]
            )
        for received in response.received_messages:
            chunk = parse(ChunkReady, received.message.data, topology.FETCH_CHUNK_READY)
            chunks[chunk.chunk] = chunk
        return bool(chunks) and len(chunks) == next(iter(chunks.values())).chunk_count

    done = wait_for(collect, timeout_s=60)
    seconds = time.perf_counter() - t0
    subscriber.delete_subscription(subscription=tap)
    if not done:
        raise RuntimeError(f"plan_fetch did not announce the chunks of {run_id} within 60 s")
    return {
        "run_id": run_id,
        "request": request,
        "chunks": [chunks[i] for i in sorted(chunks)],
        "seconds": seconds,
        "logs": function_log_lines(cfg, "plan_fetch", run_id),
    }


def malformed(cfg: StackConfig) -> list[dict]:
    """Publish a message that breaks the contract; return the log lines that rejected it."""
    from shared import clients, topology
    from shared.settings import Settings

    settings = Settings.from_env(cfg.client_env())
    publisher = clients.publisher_client(settings)
    marker = f"demo-bad-{uuid.uuid4().hex[:6]}"
    body = json.dumps({"table": "retail; DROP TABLE x", "destination": f"gs://b/{marker}"})
    message_id = publisher.publish(
        publisher.topic_path(settings.project, topology.FETCH_REQUESTS), body.encode()
    ).result()
    found = wait_for(
        lambda: [
            line
            for line in function_log_lines(cfg, "plan_fetch", "rejected")
            if line.get("message_id") == message_id
        ]
    )
    time.sleep(3)  # long enough for a redelivery to show up, had it not been acknowledged
    return [
        line
        for line in function_log_lines(cfg, "plan_fetch", "rejected")
        if line.get("message_id") == message_id
    ] or (found or [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local.demo", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="transaction rows to generate")
    parser.add_argument("--keep", action="store_true", help="leave the stack running")
    args = parser.parse_args(argv)
    cfg = StackConfig.from_env()
    print(f"== 1. local stack ({cfg.state_dir})")
    try:
        up(cfg)
    except StackError as exc:
        print(f"error: {exc}")
        return 2
    os.environ.update(cfg.client_env())
    try:
        from shared.cli import generate_data
        from shared.settings import Settings

        print(f"\n== 2. synthetic retailer, ~{args.rows:,} transaction rows -> BigQuery emulator")
        result = generate_data(args.rows, 7, "retail", Settings.from_env(), quiet=True)
        for table, n in result["rows"].items():
            print(f"  {table:<16}{n:>12,} rows")
        print(
            f"  {result['seconds']:.1f} s, {result['rows_per_s']:,.0f} rows/s, "
            f"peak RSS {result['peak_rss_mb']:.0f} MB"
        )

        table = f"{cfg.project}.retail.transactions"
        print("\n== 3. Pub/Sub round trip: fetch-requests -> plan_fetch -> fetch-chunk-ready")
        print(f"  source {table}")
        trip = round_trip(cfg, table)
        print(f"  request {trip['run_id']}: parallelism 4, filter units > 0, 5 columns")
        for chunk in trip["chunks"]:
            print(f"  chunk {chunk.chunk}/{chunk.chunk_count}: stream {chunk.stream}")
        for line in trip["logs"]:
            rows = line.get("estimated_rows")
            print(f"  log [{line['severity']}] {line['message']} (estimated rows {rows})")
        print(f"  round trip {trip['seconds']:.2f} s")

        print("\n== 4. a malformed message is rejected once, logged and acknowledged")
        rejected = malformed(cfg)
        for line in rejected:
            print(f"  log [{line['severity']}] {line['message']}")
        print(f"  deliveries seen: {len(rejected)} (1 = acknowledged, not redelivered)")
        ok = len(trip["chunks"]) > 0 and len(rejected) == 1
    finally:
        if not args.keep:
            print("\n== 5. stopping the stack")
            down(cfg)
    print("\ndemo " + ("succeeded" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
