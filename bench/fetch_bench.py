"""Fetch benchmark: every contender on the same emulator table, in one run, side by side.

    .venv/bin/python -m bench.fetch_bench [--rows 5000000] [--streams 8] [--modes plain,limits]
                                          [--repeat 3] [--only "NAME|NAME"]
    .venv/bin/python -m bench.fetch_bench --sweep 1,2,4,8,16 [--rate 2] [--rows 1000000]
    .venv/bin/python -m bench.fetch_bench --rss 5000000,20000000

Each contender runs in its own process (so peak RSS is its own) and reports wall time, rows/s,
MB/s of uncompressed Arrow, peak RSS and a row count + order-independent content checksum of
what it fetched, which must equal the source's. Every read stream, the function processes'
too, goes through the stack's local/storage_proxy.py, which the benchmark puts in a mode
through its control file: ``limits`` is GCP-limits mode (40 MB/s per connection, 8 concurrent
streams, one UNAVAILABLE per stream); ``--sweep`` caps every connection at ``--rate`` MB/s so N
streams ask far less than this machine can decode (the architecture is measured, not the two
cores), then slows one stream to a quarter (the straggler). The REST contender reads a sample
(it runs ~30k rows/s) and is marked as such. Contenders run ``--repeat`` times in interleaved
rounds; the table shows the median and the spread (the machine is shared with the emulators).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parent.parent
DATASET = "bench"
REST_SAMPLE = 200_000


def _settings():
    from shared.settings import Settings

    return Settings.from_env()


def _source(settings) -> str:
    # The sweep and the memory table use their own datasets (BENCH_DATASET), so no mode
    # replaces the table another mode's marker describes.
    return f"{settings.project}.{os.environ.get('BENCH_DATASET', DATASET)}.transactions"


def _schema(settings) -> pa.Schema:
    from google.cloud.bigquery_storage_v1 import types

    from shared import clients

    session = clients.bigquery_read_client(settings).create_read_session(
        parent=f"projects/{settings.project}",
        read_session=types.ReadSession(
            table="projects/{}/datasets/{}/tables/{}".format(*_source(settings).split(".")),
            data_format=types.DataFormat.ARROW,
        ),
        max_stream_count=1,
    )
    return pa.ipc.read_schema(pa.py_buffer(session.arrow_schema.serialized_schema))


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM). Not ru_maxrss: Linux carries that over from the
    parent across fork and exec, so every contender would report at least the runner's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _result(
    table: pa.Table | None,
    rows: int,
    nbytes: int,
    checksum: str,
    seconds: float,
    peak: float | None = None,
) -> dict:
    """A contender's measurement; ``peak`` when it was taken before the check's copies."""
    return {
        "rows": rows,
        "bytes": nbytes,
        "checksum": checksum,
        "seconds": seconds,
        "peak_rss_mb": peak if peak is not None else peak_rss_mb(),
    }


def _check(table: pa.Table, schema: pa.Schema) -> tuple[int, str]:
    from shared.fetch.checksum import checksum_table

    return checksum_table(table.select(schema.names).cast(schema))


# ----------------------------------------------------------------------------- contenders


def csv_dask(settings, streams: int) -> dict:
    """The seed baseline: extract to CSV on GCS, read the files with dask."""
    import dask.dataframe as dd
    from google.cloud import bigquery

    from shared import clients

    schema = _schema(settings)
    bq = clients.bigquery_client(settings)
    run = uuid.uuid4().hex[:8]
    root = Path(os.environ["RETAIL_GCS_ROOT"]) / settings.data_bucket / "bench-csv" / run
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    job = bq.extract_table(
        _source(settings),
        f"gs://{settings.data_bucket}/bench-csv/{run}/part-000.csv",
        job_config=bigquery.ExtractJobConfig(destination_format="CSV"),
    )
    job.result(timeout=1800)
    frame = dd.read_csv(str(root / "*.csv"), blocksize="64MB", dtype={"promo_id": "float64"})
    df = frame.compute()
    seconds = time.perf_counter() - t0
    df["date"] = __import__("pandas").to_datetime(df["date"]).dt.date
    df["promo_id"] = df["promo_id"].astype("Int64")
    table = pa.Table.from_pandas(df, preserve_index=False)
    rows, checksum = _check(table, schema)
    return _result(table, rows, table.cast(schema).nbytes, checksum, seconds)


def rest_to_arrow(settings, streams: int) -> dict:
    """google-cloud-bigquery over REST (tabledata.list), no Storage API; a sample."""
    from shared import clients

    schema = _schema(settings)
    bq = clients.bigquery_client(settings)
    t0 = time.perf_counter()
    table = bq.list_rows(_source(settings), max_results=REST_SAMPLE).to_arrow(
        create_bqstorage_client=False
    )
    seconds = time.perf_counter() - t0
    rows, checksum = _check(table, schema)
    return {**_result(table, rows, table.nbytes, checksum, seconds), "sample": True}


def _storage_to_arrow(settings, max_streams: int | None) -> dict:
    from shared import clients

    schema = _schema(settings)
    bq = clients.bigquery_client(settings)
    t0 = time.perf_counter()
    batches = bq.list_rows(_source(settings)).to_arrow_iterable(
        bqstorage_client=clients.bigquery_read_client(settings), max_stream_count=max_streams
    )
    table = pa.Table.from_batches(list(batches))
    seconds = time.perf_counter() - t0
    peak = peak_rss_mb()  # before the check's copies
    rows, checksum = _check(table, schema)
    return _result(table, rows, table.nbytes, checksum, seconds, peak)


def storage_to_arrow(settings, streams: int) -> dict:
    """google-cloud-bigquery with the Storage Read API, default streams."""
    return _storage_to_arrow(settings, None)


def storage_to_arrow_n(settings, streams: int) -> dict:
    """google-cloud-bigquery with the Storage Read API, max_stream_count=N."""
    return _storage_to_arrow(settings, streams)


def storage_to_dataframe(settings, streams: int) -> dict:
    """google-cloud-bigquery with the Storage Read API into pandas (default streams)."""
    from shared import clients

    schema = _schema(settings)
    bq = clients.bigquery_client(settings)
    t0 = time.perf_counter()
    df = bq.list_rows(_source(settings)).to_dataframe(
        bqstorage_client=clients.bigquery_read_client(settings)
    )
    seconds = time.perf_counter() - t0
    peak = peak_rss_mb()
    table = pa.Table.from_pandas(df, preserve_index=False)
    rows, checksum = _check(table, schema)
    return _result(table, rows, table.nbytes, checksum, seconds, peak)


def inhouse_sequential(settings, streams: int) -> dict:
    """The in-house module as it was: IN-list chunk tables, read one after the other."""
    from google.cloud.bigquery_storage_v1 import types

    from shared import clients

    schema = _schema(settings)
    bq = clients.bigquery_client(settings)
    read = clients.bigquery_read_client(settings)
    source = _source(settings)
    t0 = time.perf_counter()
    stores = [
        r["store_id"]
        for r in bq.query(f"SELECT DISTINCT store_id FROM `{source}` ORDER BY 1").result()
    ]
    groups = [stores[i::streams] for i in range(streams)]
    tables = []
    run = uuid.uuid4().hex[:8]
    for i, group in enumerate(g for g in groups if g):
        chunk = f"{source.rpartition('.')[0]}.chunk_{run}_{i}"
        ids = ", ".join(str(s) for s in group)
        bq.query(
            f"CREATE TABLE `{chunk}` AS SELECT * FROM `{source}` WHERE store_id IN ({ids})"
        ).result()
        session = read.create_read_session(
            parent=f"projects/{settings.project}",
            read_session=types.ReadSession(
                table="projects/{}/datasets/{}/tables/{}".format(*chunk.split(".")),
                data_format=types.DataFormat.ARROW,
            ),
            max_stream_count=1,
        )
        for stream in session.streams:
            tables.append(read.read_rows(stream.name).to_arrow(session))
        bq.delete_table(chunk)
    table = pa.concat_tables(tables)
    seconds = time.perf_counter() - t0
    rows, checksum = _check(table, schema)
    return _result(table, rows, table.nbytes, checksum, seconds)


def _ours_result(settings, manifest: dict, seconds: float) -> dict:
    from shared.fetch.checksum import checksum_batches
    from shared.fetch.library import dataset_from_manifest

    peak = peak_rss_mb()
    dataset = dataset_from_manifest(manifest, settings)
    rows, checksum = checksum_batches(dataset.to_batches(), dataset.schema.names)
    nbytes = sum(b.nbytes for b in dataset.to_batches(columns=dataset.schema.names[:0] or None))
    return {
        "rows": rows,
        "bytes": nbytes,
        "checksum": checksum,
        "seconds": seconds,
        "peak_rss_mb": peak,
    }


def _bench_request(settings, streams: int, **fields):
    from shared.messages import FetchRequest

    run = f"bench-{uuid.uuid4().hex[:8]}"
    return FetchRequest(
        run_id=run,
        table=_source(settings),
        destination=f"gs://{settings.data_bucket}/fetch/bench-{run}",
        parallelism=streams,
        **fields,
    )


def ours_chunk_tables(settings, streams: int) -> dict:
    """Ours, chunk_tables strategy (quantile bounds on store_id, date), in-process."""
    return _timed_in_process(
        settings,
        _bench_request(
            settings, streams, strategy="chunk_tables", index_columns=["store_id", "date"]
        ),
    )


def one_worker(settings, streams: int) -> dict:
    """One fetch_chunk call on one stream, as one function instance runs it (for peak RSS)."""
    from shared import clients
    from shared.fetch.library import plan_for
    from shared.fetch.worker import fetch_chunk

    request = _bench_request(settings, streams)
    gcs, read = clients.storage_client(settings), clients.bigquery_read_client(settings)
    plan = plan_for(request, request.run_id, settings)
    t0 = time.perf_counter()
    outcome = fetch_chunk(
        plan.chunks[0],
        read_client=read,
        gcs=gcs,
        part_rows=settings.part_max_rows,
        time_budget_s=3600,
    )
    seconds = time.perf_counter() - t0
    rows = outcome.done.rows
    return _result(None, rows, 0, "(one chunk)", seconds)


def ours_in_process(settings, streams: int) -> dict:
    """Ours, streams strategy, in this process with a thread pool (fetch_table); BENCH_WORKERS
    threads (default one per stream)."""
    return _timed_in_process(settings, _bench_request(settings, streams))


def _timed_in_process(settings, request, pipelined: bool = True) -> dict:
    from shared.fetch.library import run_in_process

    workers = int(os.environ.get("BENCH_WORKERS", "0")) or None
    t0 = time.perf_counter()
    manifest = run_in_process(request, settings, workers=workers, pipelined=pipelined)
    seconds = time.perf_counter() - t0
    return _ours_result(settings, _load_manifest(settings, manifest["uri"]), seconds)


def ours_in_process_sequential(settings, streams: int) -> dict:
    """Ours in-process with the worker of before: read a part, then encode and upload it."""
    return _timed_in_process(settings, _bench_request(settings, streams), pipelined=False)


def ours_pubsub(settings, streams: int) -> dict:
    """Ours, streams strategy, through the real Pub/Sub fan-out to the function processes."""
    from shared.fetch.library import publish_and_follow

    request = _bench_request(settings, streams)
    t0 = time.perf_counter()
    manifest = publish_and_follow(request, settings, timeout_s=1800, poll_s=0.05)
    seconds = time.perf_counter() - t0
    result = _ours_result(settings, manifest, seconds)
    result["peak_rss_mb"] = float("nan")  # the work ran in the function processes
    return result


def drain_only(settings, streams: int) -> dict:
    """The limit: drain every stream of one session in parallel and discard the data."""
    from concurrent.futures import ThreadPoolExecutor

    from google.cloud.bigquery_storage_v1 import types

    from shared import clients
    from shared.identifiers import TableRef

    read = clients.bigquery_read_client(settings)
    t0 = time.perf_counter()
    session = read.create_read_session(
        parent=f"projects/{settings.project}",
        read_session=types.ReadSession(
            table=TableRef.parse(_source(settings)).storage_path, data_format=types.DataFormat.ARROW
        ),
        max_stream_count=streams,
    )

    def drain(name: str) -> tuple[int, int]:
        from shared.fetch.worker import _Stream

        rows = nbytes = 0
        for batch in _Stream(read, name, 0, 8, time.sleep).batches():
            rows += batch.num_rows
            nbytes += batch.nbytes
        return rows, nbytes

    with ThreadPoolExecutor(len(session.streams)) as pool:
        totals = list(pool.map(drain, [s.name for s in session.streams]))
    seconds = time.perf_counter() - t0
    return _result(
        None, sum(r for r, _ in totals), sum(b for _, b in totals), "(discarded)", seconds
    )


def _load_manifest(settings, uri: str) -> dict:
    from shared import clients

    bucket, _, path = uri.removeprefix("gs://").partition("/")
    return json.loads(
        clients.storage_client(settings).bucket(bucket).blob(path).download_as_bytes()
    )


CONTENDERS = {
    "csv export + dask (seed baseline)": csv_dask,
    "bigquery REST to_arrow": rest_to_arrow,
    "bigquery Storage to_arrow": storage_to_arrow,
    "bigquery Storage to_arrow, N streams": storage_to_arrow_n,
    "in-house IN-list chunk tables, sequential": inhouse_sequential,
    "ours, streams, in-process": ours_in_process,
    "ours, streams, in-process, sequential worker": ours_in_process_sequential,
    "ours, streams, Pub/Sub fan-out": ours_pubsub,
    "ours, chunk_tables, in-process": ours_chunk_tables,
    "drain-only limit": drain_only,
}
# Not in the side-by-side table: measured per table size by --rss.
WORKER = {"one fetch worker (1 of N streams)": one_worker}
# Peak RSS against table size (--rss): our worker and in-process fetch beside the client's.
MEMORY = [
    "one fetch worker (1 of N streams)",
    "ours, streams, in-process",
    "bigquery Storage to_arrow",
    "bigquery Storage to_dataframe",
]
CONTENDERS_RSS = {"bigquery Storage to_dataframe": storage_to_dataframe}
LIMITS_SKIP = {"csv export + dask (seed baseline)", "bigquery REST to_arrow"}
# The scaled-down sweep (--sweep): what the architecture does with N streams when every
# connection is slow and the machine is not the bottleneck.
SWEEP = [
    "ours, streams, in-process",
    "ours, streams, Pub/Sub fan-out",
    "bigquery Storage to_arrow, N streams",
    "in-house IN-list chunk tables, sequential",
    "drain-only limit",
]


# BigQuery list prices (on-demand, US multi-region) from https://cloud.google.com/bigquery/pricing
# as read on 2026-11-30: the Storage Read API bills the bytes it reads (the selected columns'
# logical size), an on-demand query the bytes it scans; batch export (extract) jobs and
# tabledata.list are free. Free tiers (1 TiB of queries, 300 TiB of Storage Read a month) left out.
PRICES_AS_OF = "2026-11-30"
STORAGE_READ_USD_PER_TIB = 1.10
QUERY_USD_PER_TIB = 6.25


def cost_per_tib(name: str, streams: int) -> tuple[int, float, str]:
    """(BigQuery jobs, USD per TiB of selected columns, what is billed) for one contender on an
    unclustered table, from the list prices above: computed, not measured."""
    read = STORAGE_READ_USD_PER_TIB
    if name.startswith("csv export"):
        return 1, 0.0, "extract job (free); GCS reads"
    if "REST" in name:
        return 0, 0.0, "tabledata.list (free), ~30k rows/s"
    if "IN-list chunk tables" in name:
        # One DISTINCT query on the key, then N CTAS each scanning every selected column.
        return streams + 1, streams * QUERY_USD_PER_TIB + read, f"{streams} full scans + 1 read"
    if "chunk_tables" in name:
        return streams, streams * QUERY_USD_PER_TIB + read, f"{streams} CTAS scans + 1 read"
    return 0, read, "1 read"


# ----------------------------------------------------------------------------- orchestration


def _run_one(name: str, streams: int, env: dict) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "bench.fetch_bench", "--one", name, "--streams", str(streams)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if out.returncode:
        return {"error": (out.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _source_table(project: str, wanted: int, dataset: str = DATASET) -> int:
    """Generate and load the benchmark table, unless this stack already holds it (same size
    and seed): reloading millions of rows into one long-lived bqemulator grows its memory."""
    from google.api_core import exceptions as gexc

    from shared import clients
    from shared.cli import generate_data

    settings = _settings()
    marker = clients.storage_client(settings).bucket(settings.data_bucket).blob(
        f"{dataset}/_source.json"
    )  # fmt: skip
    want = {"rows_requested": wanted, "seed": 7}
    try:
        recorded = json.loads(marker.download_as_text())
        clients.bigquery_client(settings).get_table(f"{project}.{dataset}.transactions")
        if {k: recorded.get(k) for k in want} == want:
            print(f"reusing {project}.{dataset}.transactions ({recorded['rows']:,} rows)")
            return int(recorded["rows"])
    except (gexc.NotFound, ValueError, KeyError):
        pass
    print(f"generating ~{wanted:,} transaction rows into {project}.{dataset} ...", flush=True)
    rows = generate_data(wanted, 7, dataset, settings, quiet=True)["rows"]["transactions"]
    marker.upload_from_string(json.dumps({**want, "rows": rows}))
    return rows


def _verdict(r: dict, rows: int, source: tuple) -> str:
    """OK when the rows and content checksum equal the source's."""
    if r.get("sample"):
        return "sample"
    if r["checksum"] == "(discarded)" and r["rows"] == rows:
        return "limit"
    return "OK" if (r["rows"], r["checksum"]) == source else "MISMATCH"


def _verdicts(runs: list[dict], rows: int, source: tuple) -> str:
    """Every round's verdict folded into one: MISMATCH unless all rounds agree."""
    checks = {_verdict(r, rows, source) for r in runs}
    return checks.pop() if len(checks) == 1 else "MISMATCH"


def _chosen(names, only: str | None) -> list:
    """``names`` (or ``(name, ...)`` tuples) matching any |-separated part of ``--only``."""
    parts = only.split("|") if only else []
    return [
        n
        for n in names
        if not parts or any(o in (n if isinstance(n, str) else n[0]) for o in parts)
    ]


def _source_checksum(project: str, dataset: str) -> tuple[int, str]:
    from tests.integration.test_fetch_pipeline import source_checksum  # the tests' own check

    return source_checksum(_settings(), f"{project}.{dataset}.transactions")


class _Proxy:
    """The stack's Storage Read proxy, put in a mode for the length of a ``with`` block; every
    read stream of the contenders (the function processes' too) goes through it."""

    def __init__(self, control: Path) -> None:
        self.control = control
        self.timeline = control.with_name("read-proxy-timeline.jsonl")

    def __enter__(self) -> _Proxy:
        return self

    def set(self, limits) -> None:
        from local.storage_proxy import write_control

        self.timeline.unlink(missing_ok=True)
        write_control(self.control, limits, self.timeline)

    def streams(self) -> list[dict]:
        """Streams that ended since the last ``set``."""
        from local.storage_proxy import read_timeline

        return read_timeline(self.timeline)

    def __exit__(self, *exc) -> None:
        from local.storage_proxy import write_control

        write_control(self.control, None)
        self.timeline.unlink(missing_ok=True)


def _stream_times(streams: list[dict]) -> dict:
    """Median, p95 and max of the streams' durations (first byte asked to last row sent), and
    of their completion times counted from the run's first read."""
    if not streams:
        return {}
    t0 = min(s["start"] for s in streams)
    out: dict = {"count": len({s["stream"] for s in streams})}
    for key, values in (
        ("duration", [s["end"] - s["start"] for s in streams]),
        ("completion", [s["end"] - t0 for s in streams]),
    ):
        arr = np.asarray(values)
        out[key] = (float(np.median(arr)), float(np.percentile(arr, 95)), float(arr.max()))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, help="table rows (5M; the sweep 1M)")
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--modes", default="plain,limits")
    parser.add_argument("--only", help="|-separated contender names (substring match)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds: every contender runs once per round, rounds interleave, the median is shown",
    )
    parser.add_argument(
        "--rss",
        help="comma-separated table sizes: peak RSS of one fetch worker, the in-process fetch "
        "and the standard client's to_arrow and to_dataframe at each size (e.g. 5000000,20000000)",
    )
    parser.add_argument(
        "--sweep",
        help="comma-separated stream counts (e.g. 1,2,4,8,16): the scaled-down mode, every read "
        "connection capped at --rate, then the straggler case at --streams",
    )
    parser.add_argument("--rate", type=float, default=2.0, help="sweep: MB/s per connection")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.one:
        result = {**CONTENDERS, **WORKER, **CONTENDERS_RSS}[args.one](_settings(), args.streams)
        print(json.dumps(result))
        return 0

    from local.stack import StackConfig, up

    cfg = StackConfig.from_env()
    up(cfg, say=lambda _m: None)
    os.environ.update(cfg.client_env())
    base_env = {
        **os.environ,
        **cfg.client_env(),
        "RETAIL_GCS_ROOT": str(cfg.gcs_root),
        "PYTHONPATH": str(REPO),
        "RETAIL_MAX_STREAMS": "64",  # the straggler case asks for 4 streams a worker
    }
    with _Proxy(cfg.read_proxy_control) as proxy:
        if args.rss:
            sizes = [int(n) for n in args.rss.split(",")]
            return _rss_table(cfg.project, sizes, args.streams, base_env, args.only)
        if args.sweep:
            counts = [int(n) for n in args.sweep.split(",")]
            return _sweep(cfg.project, args, counts, base_env, proxy)
        return _table(cfg.project, args, base_env, proxy)


def _table(project: str, args, base_env: dict, proxy: _Proxy) -> int:
    """Every contender on one table, plain and GCP-limits, medians of ``--repeat`` rounds."""
    from local.storage_proxy import GCP_LIKE

    rows = _source_table(project, args.rows or 5_000_000)
    source = _source_checksum(project, DATASET)
    print(f"source: {rows:,} rows, checksum {source[1]}\n")

    names = _chosen(CONTENDERS, args.only)
    header = (
        f"{'mode':<7}{'contender':<44}{'median s':>9}{'min-max s':>12}{'rows/s':>12}{'MB/s':>8}"
        f"{'peak MB':>9}  {'rows':>10} check  {'jobs':>4} {'$/TiB':>6}"
    )
    for mode in args.modes.split(","):
        proxy.set(GCP_LIKE if mode == "limits" else None)
        chosen = [n for n in names if not (mode == "limits" and n in LIMITS_SKIP)]
        # Rounds interleave the contenders, so a slow spell of the shared machine (emulator
        # garbage collection, page cache) falls on all of them alike.
        runs: dict[str, list[dict]] = {name: [] for name in chosen}
        for round_ in range(args.repeat):
            print(f"  {mode}: round {round_ + 1} of {args.repeat}", flush=True)
            for name in chosen:
                runs[name].append(_run_one(name, args.streams, base_env))
        print(header)
        results = {}
        for name in chosen:
            errors = [r for r in runs[name] if "error" in r]
            if errors:
                print(f"{mode:<7}{name:<44}  error: {errors[0]['error'][:80]}")
                continue
            times = sorted(r["seconds"] for r in runs[name])
            r = results[name] = {**runs[name][0], "seconds": statistics.median(times)}
            r["peak_rss_mb"] = max(x["peak_rss_mb"] for x in runs[name])
            ok = _verdicts(runs[name], rows, source)
            spread = f"{times[0]:.2f}-{times[-1]:.2f}"
            jobs, usd, _billed = cost_per_tib(name, args.streams)
            print(
                f"{mode:<7}{name:<44}{r['seconds']:>9.2f}{spread:>12}"
                f"{r['rows'] / r['seconds']:>12,.0f}{r['bytes'] / 1e6 / r['seconds']:>8.1f}"
                f"{r['peak_rss_mb']:>9.0f}  {r['rows']:>10,} {ok}  {jobs:>4} {usd:>6.2f}",
                flush=True,
            )
        print(f"\nBigQuery cost per TiB of selected columns (list prices of {PRICES_AS_OF}):")
        for name in chosen:
            jobs, usd, billed = cost_per_tib(name, args.streams)
            print(f"  {name:<44}{usd:>8.2f} USD  {jobs:>3} job(s)  {billed}")
        ours = results.get("ours, streams, in-process", {})
        if "seconds" in ours:
            print("\nratios (median time of contender / median time of ours in-process):")
            for name, r in results.items():
                if "seconds" in r and name != "ours, streams, in-process":
                    t = r["seconds"] * (rows / r["rows"] if r.get("sample") else 1)
                    print(f"  {name:<44}{t / ours['seconds']:>8.2f}x")
        print()
    return 0


def _median_run(runs: list[dict], rows: int, source: tuple) -> dict:
    """The median round of a contender (by time), with every round's verdict folded in."""
    if any("error" in r for r in runs):
        return next(r for r in runs if "error" in r)
    ordered = sorted(runs, key=lambda r: r["seconds"])
    return {**ordered[len(ordered) // 2], "check": _verdicts(runs, rows, source)}


def _sweep(project: str, args, counts: list[int], base_env: dict, proxy: _Proxy) -> int:
    """Scale the cloud down instead of the data up: every read connection capped at ``--rate``
    MB/s, so N streams ask at most N x rate of this machine, well below what it decodes; then
    one stream at a quarter of the rate (the straggler)."""
    from local.storage_proxy import Limits

    rows = _source_table(project, args.rows or 1_000_000, "bench_sweep")
    env = {**base_env, "BENCH_DATASET": "bench_sweep"}
    source = _source_checksum(project, "bench_sweep")
    rate = args.rate * 1e6
    capped = Limits(bandwidth_bytes_s=rate, max_rows_per_response=5_000, split_to_requested=True)
    print(f"source: {rows:,} rows, checksum {source[1]}; every connection at {args.rate} MB/s\n")
    names = _chosen(SWEEP, args.only)

    def measure(name: str, streams: int, limits: Limits, extra: dict) -> dict:
        proxy.set(limits)
        r = _run_one(name, streams, {**env, **extra})
        r["streams"] = _stream_times(proxy.streams())
        return r

    runs: dict[tuple[str, int], list[dict]] = {(n, c): [] for n in names for c in counts}
    for round_ in range(args.repeat):
        for count in counts:
            print(f"  round {round_ + 1} of {args.repeat}: {count} stream(s)", flush=True)
            for name in names:
                runs[name, count].append(measure(name, count, capped, {}))
    print(
        f"\n{'contender':<44}{'streams':>8}{'read':>5}{'median s':>9}{'MB/s':>8}{'efficiency':>11}"
        f"{'stream s p50/p95/max':>22}  check"
    )
    for name in names:
        single = None
        for count in counts:
            r = _median_run(runs[name, count], rows, source)
            if "error" in r:
                print(f"{name:<44}{count:>8}  error: {r['error'][:70]}")
                continue
            throughput = r["rows"] / r["seconds"]
            if count == 1:
                single = throughput
            eff = f"{throughput / (count * single):.2f}" if single else "-"
            d = r["streams"].get("duration", (float("nan"),) * 3)
            print(
                f"{name:<44}{count:>8}{r['streams'].get('count', 0):>5}{r['seconds']:>9.2f}"
                f"{r['bytes'] / 1e6 / r['seconds']:>8.1f}"
                f"{eff:>11}{'/'.join(f'{x:.1f}' for x in d):>22}  {r['check']}",
                flush=True,
            )
    print(
        "\nefficiency = throughput with N streams / (N x throughput with 1 stream), same "
        "contender; read = streams the proxy served; stream s = each read stream's first byte "
        "asked to last row sent"
    )
    _straggler(args, rows, source, capped, measure)
    return 0


def _straggler(args, rows: int, source: tuple, capped, measure) -> None:
    """One stream of N at a quarter of the rate: what each contender's run and streams do."""
    import dataclasses

    n = args.streams
    slow = dataclasses.replace(capped, slow_first_stream=True, slow_factor=0.25)
    cases = [
        ("ours, streams, in-process", n, {}, f"{n} streams, {n} workers"),
        (
            "ours, streams, in-process",
            4 * n,
            {"BENCH_WORKERS": str(n)},
            f"{4 * n} streams, {n} workers",
        ),
        ("bigquery Storage to_arrow, N streams", n, {}, f"max_stream_count={n}"),
        ("drain-only limit", n, {}, f"{n} streams"),
    ]
    cases = _chosen(cases, args.only)
    runs: dict[tuple[int, bool], list[dict]] = {
        (i, s): [] for i in range(len(cases)) for s in (0, 1)
    }
    for round_ in range(args.repeat):
        print(f"  straggler: round {round_ + 1} of {args.repeat}", flush=True)
        for i, (name, streams, extra, _label) in enumerate(cases):
            for straggler in (False, True):
                limits = slow if straggler else capped
                runs[i, straggler].append(measure(name, streams, limits, extra))
    print(
        f"\nstraggler: each session's first stream at {args.rate / 4} MB/s, the others at "
        f"{args.rate} MB/s\n"
        f"{'contender':<40}{'how':<26}{'even s':>7}{'slow s':>7}{'ratio':>6}"
        f"{'stream s p50/p95/max':>22}{'p95/p50':>8}{'completion s p50/p95/max':>26}{'p95/p50':>8}"
        "  check"
    )
    for i, (name, _streams, _extra, label) in enumerate(cases):
        even, slowed = (_median_run(runs[i, s], rows, source) for s in (False, True))
        if "error" in even or "error" in slowed:
            print(f"{name:<40}{label:<26}  error: {(even.get('error') or slowed['error'])[:60]}")
            continue
        nan = (float("nan"),) * 3
        d = slowed["streams"].get("duration", nan)
        c = slowed["streams"].get("completion", nan)
        print(
            f"{name[:39]:<40}{label:<26}{even['seconds']:>7.2f}{slowed['seconds']:>7.2f}"
            f"{slowed['seconds'] / even['seconds']:>6.2f}"
            f"{'/'.join(f'{x:.1f}' for x in d):>22}{d[1] / d[0]:>8.2f}"
            f"{'/'.join(f'{x:.1f}' for x in c):>26}{c[1] / c[0]:>8.2f}  {slowed['check']}",
            flush=True,
        )
    print(
        "stream s = first byte asked to last row sent; completion = when each stream sent its "
        "last row, from the run's first read; ratio = run time with the straggler / without"
    )


def _rss_table(
    project: str, sizes: list[int], streams: int, env: dict, only: str | None = None
) -> int:
    """Peak RSS against table size: a worker's memory is bounded by one part, the standard
    client's by the table."""
    print(f"{'table rows':>12}{'contender':>42}{'rows read':>12}{'wall s':>8}{'peak MB':>9}")
    env = {**env, "BENCH_DATASET": "bench_rss"}
    for size in sizes:
        n = _source_table(project, size, "bench_rss")
        for name in _chosen(MEMORY, only):
            r = _run_one(name, streams, env)
            if "error" in r:
                print(f"{n:>12,}{name:>42}  error: {r['error'][:80]}")
                continue
            print(
                f"{n:>12,}{name:>42}{r['rows']:>12,}{r['seconds']:>8.2f}{r['peak_rss_mb']:>9.0f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
