"""A gRPC proxy in front of the emulator's Storage Read API: real-service behaviour and limits.

* Offsets: ``ReadRows(offset=N)`` resumes a stream at row N on the real service; bqemulator
  ignores the offset, so the proxy skips the first N rows itself. Resuming code is then tested
  for real.
* GCP-limits mode (for the benchmark and fault tests): a bandwidth cap per ReadRows connection
  (one Python process reads ~40 MB/s from the real service), a cap on concurrent read streams
  answered with RESOURCE_EXHAUSTED, and an UNAVAILABLE injected once per stream mid-read.
* A straggler: the first stream of every session served at a fraction of the per-connection rate.
* Sessions as wide as asked: bqemulator gives a session at most 10 streams where the real
  service gives up to ``max_stream_count`` (system maximum 1,000) for a big table; with
  ``split_to_requested`` the proxy asks for one stream and carves it into as many equal ones
  as were asked for with the emulator's own ``SplitReadStream``.
* A control file (``--control PATH``): when it exists, its JSON replaces the limits for every
  ReadRows call that starts after it is written, so the benchmark can put the stack's own proxy
  (the one the function processes read through) in a mode and back. With ``"timeline": PATH``
  in it, every stream that ends is appended to PATH as a JSON line (first byte asked, last row
  sent, rows), which is how the benchmark sees stream completion times of any contender.

``python -m local.storage_proxy --listen 127.0.0.1:9061 --upstream 127.0.0.1:9060 [--limits]
[--control PATH]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import threading
import time
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
import pyarrow as pa
from google.cloud.bigquery_storage_v1 import types

SERVICE = "google.cloud.bigquery.storage.v1.BigQueryRead"
# Credit a rate-capped connection keeps while its reader is not reading, in seconds.
BURST_S = 0.1
_OPTIONS = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]


@dataclass(frozen=True)
class Limits:
    """What the proxy enforces besides offsets; None switches a limit off."""

    bandwidth_bytes_s: float | None = None
    max_concurrent_streams: int | None = None
    fail_once_after_rows: int | None = None
    # The emulator answers with up to 65,536 rows per response; smaller responses make
    # mid-stream faults land mid-stream.
    max_rows_per_response: int | None = None
    # The first stream of each session created in this mode gets ``slow_factor`` of the rate.
    slow_first_stream: bool = False
    slow_factor: float = 1.0
    # Give a session the max_stream_count it asked for, of equal rows (see above).
    split_to_requested: bool = False


def write_control(path: Path, limits: Limits | None, timeline: Path | None = None) -> None:
    """Put a proxy started with ``--control path`` in ``limits`` (None: back to its own)."""
    if limits is None:
        path.unlink(missing_ok=True)
        return
    body = {**dataclasses.asdict(limits), "timeline": str(timeline) if timeline else None}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body))
    tmp.replace(path)


def read_timeline(path: Path) -> list[dict]:
    """The streams a proxy recorded: ``stream``, ``start``/``end`` (epoch seconds), ``rows``."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


GCP_LIKE = Limits(
    bandwidth_bytes_s=40e6,
    max_concurrent_streams=8,
    fail_once_after_rows=50_000,
    max_rows_per_response=20_000,
)


def _drain(call: grpc.Call) -> None:
    try:
        for _ in call:
            pass
    except grpc.RpcError:
        pass


def _identity(data: bytes) -> bytes:
    return data


class ReadProxy:
    """Forwards the BigQueryRead service to ``upstream``, applying offsets and ``limits``."""

    def __init__(
        self, upstream: str, limits: Limits | None = None, control: Path | None = None
    ) -> None:
        self.limits = limits or Limits()
        self.control = control
        self.channel = grpc.insecure_channel(upstream, _OPTIONS)
        self._active = 0
        self._lock = threading.Lock()
        self._failed: set[str] = set()
        self._first_asked: dict[str, float] = {}
        self._slow: set[str] = set()
        self.stats = {"rejected": 0, "faults": 0, "streams": 0}
        self.address = ""
        self._create_upstream = self._unary("CreateReadSession")
        self._split_upstream = self.channel.unary_unary(
            f"/{SERVICE}/SplitReadStream",
            request_serializer=types.SplitReadStreamRequest.serialize,
            response_deserializer=types.SplitReadStreamResponse.deserialize,
        )

    def _current(self) -> tuple[Limits, Path | None]:
        """The limits for a call starting now, and where to record its stream's end."""
        if self.control is None:
            return self.limits, None
        try:
            body = json.loads(self.control.read_text())
        except (FileNotFoundError, ValueError):
            return self.limits, None
        timeline = body.pop("timeline", None)
        return Limits(**body), Path(timeline) if timeline else None

    def _unary(self, method: str):
        call = self.channel.unary_unary(
            f"/{SERVICE}/{method}", request_serializer=_identity, response_deserializer=_identity
        )

        def handler(request: bytes, context: grpc.ServicerContext) -> bytes:
            try:
                return call(request, metadata=context.invocation_metadata())
            except grpc.RpcError as exc:
                context.abort(exc.code(), exc.details())

        return handler

    def _create_session(self, request_bytes: bytes, context: grpc.ServicerContext) -> bytes:
        """CreateReadSession, widened to the streams asked for and its straggler marked, as
        the current limits say."""
        limits, _timeline = self._current()
        request = types.CreateReadSessionRequest.deserialize(request_bytes)
        wanted = int(request.max_stream_count)
        if limits.split_to_requested and wanted > 1:
            # One stream of the whole table, carved into ``wanted`` equal ones below.
            request.max_stream_count = 1
            request_bytes = types.CreateReadSessionRequest.serialize(request)
        answer = self._create_upstream(request_bytes, context)
        if not (limits.split_to_requested or limits.slow_first_stream):
            return answer
        session = types.ReadSession.deserialize(answer)
        names = [stream.name for stream in session.streams]
        if limits.split_to_requested and len(names) == 1 and wanted > 1:
            names = self._carve(names[0], wanted, context)
            del session.streams[:]
            session.streams.extend(types.ReadStream(name=name) for name in names)
        if limits.slow_first_stream and names:
            with self._lock:
                self._slow.add(names[0])
        return types.ReadSession.serialize(session)

    def _carve(self, name: str, wanted: int, context: grpc.ServicerContext) -> list[str]:
        """``wanted`` streams of about equal rows from one: split off 1/k of what is left,
        k = wanted, wanted - 1, ..., 2 (the emulator's SplitReadStream carves row ranges)."""
        names, rest = [], name
        for k in range(wanted, 1, -1):
            answer = self._split_upstream(
                types.SplitReadStreamRequest(name=rest, fraction=1 / k),
                metadata=context.invocation_metadata(),
            )
            names.append(answer.primary_stream.name)
            rest = answer.remainder_stream.name
        return [*names, rest]

    def _read_rows(self, request_bytes: bytes, context: grpc.ServicerContext):
        request = types.ReadRowsRequest.deserialize(request_bytes)
        limits, timeline = self._current()
        with self._lock:
            if timeline is not None:  # only while a benchmark records
                self._first_asked.setdefault(request.read_stream, time.time())
            if limits.max_concurrent_streams and self._active >= limits.max_concurrent_streams:
                self.stats["rejected"] += 1
                context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"too many concurrent read streams (limit {limits.max_concurrent_streams})",
                )
            self._active += 1
            self.stats["streams"] += 1
        try:
            sent, sent_bytes = yield from self._forward(request, context, limits)
            if timeline is not None:
                line = {
                    "stream": request.read_stream,
                    "start": self._first_asked[request.read_stream],
                    "end": time.time(),
                    "rows": int(request.offset) + sent,
                    "bytes": sent_bytes,  # by this call (the last one, if resumed)
                    "slow": request.read_stream in self._slow,
                }
                with self._lock, timeline.open("a") as out:
                    out.write(json.dumps(line) + "\n")
        finally:
            with self._lock:
                self._active -= 1

    def _forward(
        self, request: types.ReadRowsRequest, context: grpc.ServicerContext, limits: Limits
    ):
        """Yields the responses; returns the rows and bytes sent."""
        rate = limits.bandwidth_bytes_s
        if rate and request.read_stream in self._slow:
            rate *= limits.slow_factor
        upstream = self.channel.unary_stream(
            f"/{SERVICE}/ReadRows", request_serializer=_identity, response_deserializer=_identity
        )
        forwarded = types.ReadRowsRequest(read_stream=request.read_stream, offset=0)
        skip = int(request.offset)
        schema_bytes = b""
        sent_schema = False
        sent_rows = sent_bytes = 0
        free_at = time.monotonic()
        call = upstream(
            types.ReadRowsRequest.serialize(forwarded), metadata=context.invocation_metadata()
        )
        try:
            for raw in call:
                response = types.ReadRowsResponse.deserialize(raw)
                if response.arrow_schema.serialized_schema:
                    schema_bytes = response.arrow_schema.serialized_schema
                rows = int(response.row_count)
                if not rows:
                    continue
                if skip >= rows:
                    skip -= rows
                    continue
                batch = pa.ipc.read_record_batch(
                    pa.py_buffer(response.arrow_record_batch.serialized_record_batch),
                    pa.ipc.read_schema(pa.py_buffer(schema_bytes)),
                ).slice(skip)
                skip = 0
                step = limits.max_rows_per_response or batch.num_rows
                for first in range(0, batch.num_rows, step):
                    piece = batch.slice(first, step)
                    out_response = types.ReadRowsResponse(
                        row_count=piece.num_rows,
                        arrow_record_batch=types.ArrowRecordBatch(
                            serialized_record_batch=piece.serialize().to_pybytes()
                        ),
                        stats=response.stats,
                    )
                    if not sent_schema:
                        out_response.arrow_schema = types.ArrowSchema(
                            serialized_schema=schema_bytes
                        )
                        sent_schema = True
                    if (
                        limits.fail_once_after_rows is not None
                        and sent_rows >= limits.fail_once_after_rows
                        and request.read_stream not in self._failed
                    ):
                        with self._lock:
                            self._failed.add(request.read_stream)
                            self.stats["faults"] += 1
                        context.abort(grpc.StatusCode.UNAVAILABLE, "injected: connection reset")
                    out = types.ReadRowsResponse.serialize(out_response)
                    sent_rows += piece.num_rows
                    sent_bytes += len(out)
                    if rate:
                        # A leaky bucket: a reader that paused (to encode, to upload) may catch
                        # up by at most BURST_S of the rate, what a connection's flow-control
                        # window holds, not by everything it missed.
                        now = time.monotonic()
                        free_at = max(free_at, now - BURST_S) + len(out) / rate
                        if free_at > now:
                            time.sleep(free_at - now)
                    yield out
        except grpc.RpcError as exc:
            context.abort(exc.code(), exc.details())
        else:
            return sent_rows, sent_bytes
        finally:
            # A reader that stops early (a hand-off, an injected fault) leaves the upstream
            # stream half read. bqemulator wedges when a stream is cancelled mid-way (its
            # handler fails on the next write and stops serving reads), so drain the rest
            # in the background instead of cancelling.
            threading.Thread(target=_drain, args=(call,), daemon=True).start()

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "CreateReadSession": grpc.unary_unary_rpc_method_handler(
                    self._create_session, _identity, _identity
                ),
                "SplitReadStream": grpc.unary_unary_rpc_method_handler(
                    self._unary("SplitReadStream"), _identity, _identity
                ),
                "ReadRows": grpc.unary_stream_rpc_method_handler(
                    self._read_rows, _identity, _identity
                ),
            },
        )


def serve(
    listen: str, upstream: str, limits: Limits | None = None, control: Path | None = None
) -> tuple[grpc.Server, ReadProxy]:
    """Start the proxy on ``listen`` (port 0: any free port, see ``proxy.address``); returns
    the server (call ``.stop(0)``) and the proxy."""
    proxy = ReadProxy(upstream, limits, control)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=64), options=_OPTIONS)
    server.add_generic_rpc_handlers((proxy.handler(),))
    port = server.add_insecure_port(listen)
    if port == 0:
        raise OSError(f"cannot listen on {listen}")
    proxy.address = f"{listen.rpartition(':')[0]}:{port}"
    server.start()
    return server, proxy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--listen", required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--limits", action="store_true", help="GCP-like limits and faults")
    parser.add_argument(
        "--control", type=Path, help="a JSON file of limits that wins while it exists"
    )
    args = parser.parse_args(argv)
    server, _ = serve(args.listen, args.upstream, GCP_LIKE if args.limits else None, args.control)
    server.wait_for_termination()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
