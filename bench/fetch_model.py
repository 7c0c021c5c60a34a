"""A model on paper for fetching a real 1 TB table: measured client CPU, documented limits, prices.

    .venv/bin/python -m bench.fetch_model [--rows 2000000] [--tb 1] [--workers 8,64,400]

This process measures the client CPU seconds per GB of Arrow data that each step
costs (parsing ReadRows responses, Parquet encoding with zstd, handing the bytes to the GCS
client, decoding Parquet again); the upload is timed against the local fake-gcs, so only its
client-side CPU counts. From those and the named assumptions below it projects wall time and
cost of a whole-table fetch at several worker counts for ours (one Cloud Run function instance
per stream), the standard client's ``to_arrow`` on one machine, and extract-then-read. Nothing
here was run against BigQuery: every number that is not measured is an assumption, and the
table says which.
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from bench.fetch_bench import PRICES_AS_OF, STORAGE_READ_USD_PER_TIB

TIB = 2**40


@dataclass(frozen=True)
class Assumptions:
    """Every number the projection takes that this machine did not measure."""

    # Storage Read API: what one ReadRows connection delivers to one client. Google documents
    # no per-stream rate; 40 MB/s is what local/storage_proxy.py's GCP-limits mode assumes.
    stream_mb_s: float = 40.0
    # Streams per read session: the API's documented system maximum (CreateReadSession).
    max_streams: int = 1000
    # fetch_chunk is deployed with 1 GiB (shared/platform.yaml); Cloud Run functions give a
    # 1 GiB instance 0.583 vCPU.
    worker_vcpu: float = 0.583
    worker_gib: float = 1.0
    # Plan, first cold starts, finalize: seconds a run costs besides reading.
    fixed_s: float = 20.0
    # One machine for to_arrow: 16 vCPU, and the whole table held in memory.
    machine_vcpu: int = 16
    machine_ram_gib: int = 128
    machine_usd_h: float = 1.05  # an on-demand 16 vCPU / 128 GiB VM
    machine_gb_s: float = 4.0  # its network: 32 Gbps
    # Extract (EXPORT to Parquet): free, not documented how fast; assumed 1 GB/s for the job,
    # and reading the files back from GCS at 100 MB/s per connection.
    extract_gb_s: float = 1.0
    gcs_read_mb_s: float = 100.0
    # Prices (USD, Tier 1 region, request-based billing), as recorded on PRICES_AS_OF.
    vcpu_s_usd: float = 0.000024
    gib_s_usd: float = 0.0000025
    class_a_per_1000_usd: float = 0.005  # one per part uploaded
    part_mb: float = 32.0  # shared/platform.yaml part_target_mb


def _cpu(step: Callable[[], object], repeat: int = 3) -> float:
    """Least CPU seconds of ``repeat`` runs of ``step``, every thread of this process (Arrow
    decodes and compresses on its own pools too; nothing else runs here meanwhile)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        step()
        best = min(best, time.process_time() - t0)
    return best


def measure(rows: int) -> dict[str, float]:
    """Client CPU seconds per GB of Arrow data, per step, on this machine."""
    from google.cloud.bigquery_storage_v1 import types

    from shared.synthetic.generate import Shape, build_world, transactions

    batches = []
    for batch in transactions(build_world(Shape.for_rows(rows), seed=7)):
        batches.append(batch)
        if sum(b.num_rows for b in batches) >= rows:
            break
    table = pa.Table.from_batches(batches)
    gb = table.nbytes / 1e9
    schema = table.schema.serialize().to_pybytes()
    # What ReadRows sends: Arrow IPC record batches in protobuf responses of ~20k rows.
    responses = [
        types.ReadRowsResponse.serialize(
            types.ReadRowsResponse(
                row_count=piece.num_rows,
                arrow_record_batch=types.ArrowRecordBatch(
                    serialized_record_batch=piece.serialize().to_pybytes()
                ),
            )
        )
        for piece in table.to_batches(max_chunksize=20_000)
    ]

    def parse() -> None:
        arrow_schema = pa.ipc.read_schema(pa.py_buffer(schema))
        for raw in responses:
            response = types.ReadRowsResponse.deserialize(raw)
            pa.ipc.read_record_batch(
                pa.py_buffer(response.arrow_record_batch.serialized_record_batch), arrow_schema
            )

    parquet = io.BytesIO()

    def encode() -> None:
        parquet.seek(0)
        parquet.truncate()
        pq.write_table(table, parquet, compression="zstd")

    def decode() -> None:
        pq.read_table(io.BytesIO(parquet.getvalue()))

    out = {
        "parse ReadRows (protobuf + Arrow IPC)": _cpu(parse) / gb,
        "Parquet encode (zstd)": _cpu(encode) / gb,
        "Parquet decode": _cpu(decode) / gb,
    }
    out["upload (GCS client)"] = _upload_cpu(parquet.getvalue()) / gb
    out["_parquet_ratio"] = len(parquet.getvalue()) / table.nbytes
    out["_gb"] = gb
    return out


def _upload_cpu(data: bytes) -> float:
    """Client-side CPU of uploading ``data`` to the local stack's GCS (fake-gcs)."""
    import os
    import uuid

    from local.stack import StackConfig, up
    from shared import clients
    from shared.settings import Settings

    cfg = StackConfig.from_env()
    up(cfg, say=lambda _m: None)
    os.environ.update(cfg.client_env())
    settings = Settings.from_env()
    blob = (
        clients.storage_client(settings)
        .bucket(settings.data_bucket)
        .blob(f"bench/model-{uuid.uuid4().hex[:6]}.parquet")
    )
    cpu = _cpu(lambda: blob.upload_from_string(data), repeat=2)
    blob.delete()
    return cpu


def project(cpu: dict[str, float], tb: float, workers: list[int], a: Assumptions) -> list[dict]:
    """Wall time and cost of fetching ``tb`` TB of selected columns, per contender and size."""
    gb = tb * 1000
    tib = tb * 1e12 / TIB
    read_usd = tib * STORAGE_READ_USD_PER_TIB
    ours_cpu = cpu["parse ReadRows (protobuf + Arrow IPC)"] + cpu["Parquet encode (zstd)"]
    ours_cpu += cpu["upload (GCS client)"]
    # A worker is held back by its connection or by its share of a CPU, whichever is less; so
    # the instance-seconds (gb / per_worker), hence the compute bill, do not depend on workers.
    worker_limits = {"stream": a.stream_mb_s / 1000, "worker CPU": a.worker_vcpu / ours_cpu}
    bound = min(worker_limits, key=lambda k: worker_limits[k])
    per_worker = worker_limits[bound]
    instance_usd_s = a.worker_vcpu * a.vcpu_s_usd + a.worker_gib * a.gib_s_usd
    compute = gb / per_worker * instance_usd_s
    ops = gb * 1000 / a.part_mb / 1000 * a.class_a_per_1000_usd  # one write per part
    rows = []
    for w in workers:
        streams = min(w, a.max_streams)
        seconds = gb / (streams * per_worker) + a.fixed_s
        rows.append(
            {
                "contender": "ours, Pub/Sub fan-out",
                "workers": w,
                "bound by": bound,
                "seconds": seconds,
                "usd": read_usd + compute + ops,
                "note": f"{streams} streams; ${read_usd:.2f} read + ${compute:.2f} compute "
                f"+ ${ops:.2f} GCS writes",
            }
        )
    parse = cpu["parse ReadRows (protobuf + Arrow IPC)"]
    for w in workers:
        streams = min(w, a.max_streams)
        limits = {
            "streams": streams * a.stream_mb_s / 1000,
            "CPU": a.machine_vcpu / parse,
            "network": a.machine_gb_s,
        }
        bound = min(limits, key=lambda k: limits[k])
        seconds = gb / limits[bound] + a.fixed_s
        fits = gb <= a.machine_ram_gib * 1.07
        rows.append(
            {
                "contender": f"to_arrow, one {a.machine_vcpu}-vCPU machine",
                "workers": w,
                "bound by": bound,
                "seconds": seconds,
                "usd": read_usd + seconds / 3600 * a.machine_usd_h,
                "note": "fits in memory"
                if fits
                else f"does not fit: {gb:,.0f} GB of Arrow in {a.machine_ram_gib} GiB of RAM",
            }
        )
    extract_s = gb / a.extract_gb_s
    decode = cpu["Parquet decode"]
    parquet_gb = gb * cpu["_parquet_ratio"]
    for w in workers:
        # A reader fetches Parquet bytes and decodes them into Arrow.
        per_reader = min(a.gcs_read_mb_s / 1000 / cpu["_parquet_ratio"], a.worker_vcpu / decode)
        seconds = extract_s + gb / (w * per_reader) + a.fixed_s
        reading = gb / per_reader * instance_usd_s
        rows.append(
            {
                "contender": "extract to Parquet, then read",
                "workers": w,
                "bound by": "extract job",
                "seconds": seconds,
                "usd": reading,
                "note": f"extract free ({extract_s:,.0f} s assumed) to {parquet_gb:,.0f} GB of "
                "Parquet; readers' compute",
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows measured")
    parser.add_argument("--tb", type=float, default=1.0, help="TB of selected columns")
    parser.add_argument("--workers", default="8,64,400")
    args = parser.parse_args(argv)
    a = Assumptions()
    cpu = measure(args.rows)
    print(f"client CPU seconds per GB of Arrow, {cpu['_gb']:.2f} GB measured:")
    for step, value in cpu.items():
        if not step.startswith("_"):
            print(f"  {step:<40}{value:>7.2f} s/GB")
    print(f"  Parquet (zstd) is {cpu['_parquet_ratio']:.0%} of the Arrow size\n")
    print("assumptions (not measured here):")
    for name, value in vars(a).items():
        print(f"  {name:<22}{value}")
    print(f"  prices as of {PRICES_AS_OF}: Storage Read ${STORAGE_READ_USD_PER_TIB}/TiB\n")
    workers = [int(n) for n in args.workers.split(",")]
    print(
        f"{'contender':<36}{'workers':>8}{'bound by':>12}{'wall':>10}{'USD':>9}  note "
        f"({args.tb:g} TB of selected columns)"
    )
    for r in project(cpu, args.tb, workers, a):
        print(
            f"{r['contender']:<36}{r['workers']:>8}{r['bound by']:>12}"
            f"{_duration(r['seconds']):>10}{r['usd']:>9.2f}  {r['note']}"
        )
    return 0


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


if __name__ == "__main__":
    raise SystemExit(main())
