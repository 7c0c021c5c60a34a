"""Load benchmark of the prediction API: requests/s and latency under a closed-loop load.

    .venv/bin/python -m bench.api_load [--seconds 10] [--clients 2] [--threads 4]

Starts the local stack (for GCS), publishes a pricing and a promotion model trained on a small
synthetic retailer to a bench prefix, then runs, side by side on the same loopback:

- the baseline: Flask's development server (threaded), as a quick deployment would run it;
- gunicorn with gthread workers (2 processes x 32 threads) alone;
- ours: the asyncio front that absorbs slow clients, gunicorn behind it, as the Cloud Run
  service runs (``shared/api/serve.py``);

each for single promotion predictions (POST) and price lookups (GET), and finally ours under
prediction load while a new model run is published and swapped in (every response must be
a 200; both run ids must be seen). Then slow clients: 64 connections send their headers and
never their body (more than gunicorn's 64 threads) while /healthz is probed 8 times, for
gunicorn alone and for ours. Clients are separate processes with keep-alive
connections, each thread sending its next request when the last one answered.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
PREFIX = "bench-api"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _publish(settings, keyring, pricing: dict, promotion_model, run_id: str) -> None:
    from shared import clients
    from shared.training.artifacts import publish

    gcs = clients.storage_client(settings)
    promotion_model.run_id = run_id
    for kind, body in (
        ("pricing", json.dumps({**pricing, "run_id": run_id}).encode()),
        ("promotions", pickle.dumps(promotion_model)),
    ):
        publish(gcs, f"gs://{settings.data_bucket}/{PREFIX}/{kind}/{run_id}.model", body, keyring)


def _models():
    """A pricing artifact body and a promotion model from a small synthetic retailer."""
    import pyarrow as pa

    from shared.synthetic.generate import Shape, build_world, transactions
    from shared.training.pricing import fit_products
    from shared.training.promotions import product_baselines, promotion_rows, train

    world = build_world(Shape(n_stores=10, n_products=60, n_days=364), seed=11)
    table = pa.Table.from_batches(list(transactions(world)))
    pricing = {"kind": "pricing", "products": [r.row() for r in fit_products(table)]}
    model = train(promotion_rows(table, world.promotions))
    model.baselines = product_baselines(table)
    return pricing, model


def _serve(kind: str, port: int, env: dict) -> subprocess.Popen:
    if kind == "front+gunicorn":
        from local.stack import api_argv

        argv = api_argv(port)
    elif kind == "gunicorn":
        from shared.api.serve import gunicorn_argv

        argv = gunicorn_argv(f"127.0.0.1:{port}")
    else:
        code = (
            "from shared.api.wsgi import app; "
            f"app.run(host='127.0.0.1', port={port}, threaded=True)"
        )
        argv = [sys.executable, "-c", code]
    proc = subprocess.Popen(
        argv, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/readyz")
            ready = conn.getresponse()
            ready.read()
            body_ok = ready.status == 200
            conn.close()
            if body_ok:
                return proc
        except OSError:
            pass
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGTERM)
    raise RuntimeError(f"{kind} did not become ready on port {port}")


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


def _client(port, requests, seconds, threads, queue) -> None:
    """One client process: ``threads`` closed loops over ``requests`` for ``seconds``."""
    stop_at = time.perf_counter() + seconds
    results = []

    def loop(offset: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        latencies, statuses, runs = [], {}, set()
        i = offset
        while time.perf_counter() < stop_at:
            method, path, body = requests[i % len(requests)]
            i += 1
            t0 = time.perf_counter()
            try:
                headers = {"Content-Type": "application/json"} if body else {}
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                status = response.status
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
            except (OSError, http.client.HTTPException):
                conn.close()
                status, data = -1, b""
            latencies.append(time.perf_counter() - t0)
            statuses[status] = statuses.get(status, 0) + 1
            if status == 200 and b"model_run_id" in data:
                runs.add(json.loads(data).get("model_run_id"))
        results.append((latencies, statuses, runs))

    workers = [threading.Thread(target=loop, args=(k * 7,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    queue.put(results)


def _load(port, requests, seconds, clients, threads, during=None) -> dict:
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_client, args=(port, requests, seconds, threads, queue))
        for _ in range(clients)
    ]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    if during:
        time.sleep(seconds / 3)
        during()
    parts = [item for _ in procs for item in queue.get(timeout=seconds + 60)]
    for p in procs:
        p.join()
    wall = time.perf_counter() - t0
    latencies = np.concatenate([np.asarray(lat) for lat, _, _ in parts])
    statuses: dict = {}
    runs: set = set()
    for _, st, rn in parts:
        for k, v in st.items():
            statuses[k] = statuses.get(k, 0) + v
        runs |= rn
    return {
        "requests": len(latencies),
        "rps": len(latencies) / wall,
        "p50_ms": float(np.percentile(latencies, 50) * 1000),
        "p99_ms": float(np.percentile(latencies, 99) * 1000),
        "non_200": sum(v for k, v in statuses.items() if k != 200),
        "runs": sorted(r for r in runs if r),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=2, help="load generator processes")
    parser.add_argument("--threads", type=int, default=4, help="connections per process")
    args = parser.parse_args(argv)

    from local.stack import StackConfig, up
    from shared.settings import Settings
    from shared.training.artifacts import Keyring

    cfg = StackConfig.from_env()
    up(cfg, say=lambda _m: None)
    settings = Settings.from_env(cfg.client_env())
    key = f"bench:{Keyring.new_key()}"
    keyring = Keyring.parse(key)
    pricing, promotion_model = _models()
    _publish(settings, keyring, pricing, promotion_model, "bench-run-1")
    products = sorted(promotion_model.baselines)
    predict = [
        (
            "POST",
            "/v1/promotions:predict",
            json.dumps(
                {
                    "product_id": p,
                    "mechanic": ("tpr", "multibuy", "bogo")[p % 3],
                    "discount": 0.15 + 0.05 * (p % 5),
                    "start_date": f"2025-0{1 + p % 9}-0{1 + p % 9}",
                    "duration_days": 7 * (1 + p % 2),
                    "feature": p % 2 == 0,
                }
            ),
        )
        for p in products
    ]
    prices = [("GET", f"/v1/prices/{p}", None) for p in products]
    env = {
        **os.environ,
        **cfg.client_env(),
        "PYTHONPATH": str(REPO),
        "RETAIL_ARTIFACTS": f"gs://{settings.data_bucket}/{PREFIX}",
        "RETAIL_ARTIFACT_KEYS": key,
        "RETAIL_ARTIFACT_KEYS_FILE": "",
        "RETAIL_MODEL_POLL_S": "1",
    }
    rows, slow = [], {}
    for server in ("flask-dev", "gunicorn", "front+gunicorn"):
        port = _free_port()
        proc = _serve(server, port, env)
        try:
            for name, requests in (("single prediction", predict), ("price lookup", prices)):
                rows.append((server, name, _load(port, requests, args.seconds, args.clients,
                                                 args.threads)))  # fmt: skip
            if server == "front+gunicorn":
                swap = lambda: _publish(settings, keyring, pricing, promotion_model, "bench-run-2")  # noqa: E731
                result = _load(port, predict, args.seconds, args.clients, args.threads, swap)
                rows.append((server, "prediction, model swapped mid-run", result))
            if server != "flask-dev":
                slow[server] = _slow_clients(port)
        finally:
            _stop(proc)

    print(
        f"\n{args.clients} client processes x {args.threads} keep-alive connections, "
        f"{args.seconds:.0f} s per row; target: >= 300 req/s, p99 < 100 ms (single predictions)\n"
    )
    print(f"{'server':<16}{'load':<36}{'requests':>9}{'req/s':>9}{'p50 ms':>8}{'p99 ms':>8}"
          f"{'non-200':>8}  model runs seen")  # fmt: skip
    for server, name, r in rows:
        print(
            f"{server:<16}{name:<36}{r['requests']:>9}{r['rps']:>9.0f}{r['p50_ms']:>8.1f}"
            f"{r['p99_ms']:>8.1f}{r['non_200']:>8}  {', '.join(r['runs'])}"
        )
    base = {name: r for server, name, r in rows if server == "flask-dev"}
    ours = {name: r for server, name, r in rows if server == "front+gunicorn"}
    for name in base:
        print(f"ours / flask-dev throughput, {name}: {ours[name]['rps'] / base[name]['rps']:.2f}x")
    print(f"\n{SLOW} clients send headers and never the body; /healthz probed {PROBES} times")
    print(f"{'server':<16}{'answered in 5 s':>16}{'p50 ms':>9}{'max ms':>9}")
    for server, times in slow.items():
        answered = [t for t in times if t is not None and t < 5000]
        seen = sorted(t for t in times if t is not None) or [float("nan")]
        print(f"{server:<16}{len(answered):>12} / {PROBES}{seen[len(seen) // 2]:>9.0f}"
              f"{seen[-1]:>9.0f}")  # fmt: skip
    return 0


SLOW, PROBES = 64, 8


def _slow_clients(port: int) -> list[float | None]:
    """/healthz latencies (ms; None when unanswered in 12 s) while SLOW connections hold a
    request whose body never comes."""
    held = []
    for _ in range(SLOW):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(
            b"POST /v1/promotions:predict HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
        )
        held.append(sock)
    times: list[float | None] = []
    try:
        time.sleep(0.5)  # let the server take every connection in
        for _ in range(PROBES):
            started = time.perf_counter()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=12)
                conn.request("GET", "/healthz")
                ok = conn.getresponse().status == 200
                conn.close()
            except OSError:
                ok = False
            times.append((time.perf_counter() - started) * 1000 if ok else None)
    finally:
        for sock in held:
            sock.close()
    return times


if __name__ == "__main__":
    sys.exit(main())
