"""Pub/Sub push for the local stack, concurrent as the service's is.

The official emulator's push loop keeps at most two requests in flight per subscription
(16 messages to an endpoint that answers in 1 s: never more than 2 at once), so locally a
fan-out ran two workers at a time and deliveries of one subscription hardly overlapped. The
service pushes as fast as the endpoint answers with success, so a function sees as many
deliveries at once as it has instances (``max_instances``, one request each).

This relay stands in for that: the emulator keeps the subscription (ack deadline, retry
backoff, delivery attempts, dead-lettering; all apply to pulled messages too) and the relay
pulls from it and POSTs each message, in the push wrapper, to the function's push endpoint,
up to a push window per subscription (``concurrency``, more than the function serves: like
the service, the relay does not wait for a free instance). A 2xx answer acks; any other
answer, a 429 from a function whose instances are all busy included, or a broken connection
nacks: a failed delivery attempt, redelivered after the retry policy's backoff and
dead-lettered after its attempts. A request still running at the ack deadline is left alone
and the message is redelivered meanwhile, as the service does.

Run by the stack (``python -m local.push_relay --routes ROUTES.json --port PORT``, the
emulator's address in ``PUBSUB_EMULATOR_HOST``); ``GET /stats`` gives per-subscription
counts (delivered, acked, nacked, of those refused with 429, in flight, peak in flight).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import threading
import urllib.error
import urllib.request
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1

# Idle subscriptions are polled (a blocking pull the client gives up on would lease messages
# to nobody until their ack deadline): from this interval up to the next. The client warns
# that return_immediately is deprecated, on every call; that is the point here.
IDLE_POLL_S = (0.02, 0.1)
warnings.filterwarnings("ignore", "The return_immediately flag", DeprecationWarning)
SUCCESS = {102, 200, 201, 202, 204}  # the codes the service takes as an ack


@dataclass(frozen=True)
class Route:
    """One subscription and where its messages go."""

    subscription: str  # projects/P/subscriptions/S
    endpoint: str  # the function's push URL
    concurrency: int
    ack_deadline_s: int


@dataclass
class Counts:
    delivered: int = 0
    acked: int = 0
    nacked: int = 0
    refused: int = 0  # nacked because the function answered 429 (every instance busy)
    in_flight: int = 0
    peak_in_flight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def start(self) -> None:
        with self._lock:
            self.delivered += 1
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def end(self, acked: bool, status: int = 0) -> None:
        with self._lock:
            self.in_flight -= 1
            if acked:
                self.acked += 1
            else:
                self.nacked += 1
                self.refused += status == 429

    def snapshot(self, reset_peak: bool = False) -> dict[str, int]:
        """The counts; ``reset_peak`` starts a new window for the peak."""
        with self._lock:
            counts = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "_lock"}
            if reset_peak:
                self.peak_in_flight = self.in_flight
            return counts


def push_body(subscription: str, received: Any) -> bytes:
    """The JSON body the service POSTs for one message (wrapped delivery)."""
    message = received.message
    published = message.publish_time.isoformat().replace("+00:00", "Z")
    body: dict[str, Any] = {
        "message": {
            "data": base64.b64encode(message.data).decode(),
            "attributes": dict(message.attributes),
            "messageId": message.message_id,
            "message_id": message.message_id,
            "publishTime": published,
            "publish_time": published,
        },
        "subscription": subscription,
    }
    if received.delivery_attempt:
        body["deliveryAttempt"] = received.delivery_attempt
    return json.dumps(body).encode()


def post(endpoint: str, body: bytes, timeout_s: float) -> int:
    """POST one delivery; the HTTP status, or 0 when there was no answer."""
    request = urllib.request.Request(
        endpoint, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return 0


class Relay:
    """Delivers ``route``'s messages until :meth:`stop`."""

    def __init__(self, subscriber: pubsub_v1.SubscriberClient, route: Route) -> None:
        self.subscriber = subscriber
        self.route = route
        self.counts = Counts()
        self._slots = threading.Semaphore(route.concurrency)
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(route.concurrency, thread_name_prefix="push")
        self._thread = threading.Thread(target=self._loop, daemon=True, name="relay")

    def start(self) -> Relay:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _free_slots(self) -> int:
        """Blocks for one free slot, then takes every other free one."""
        while not self._slots.acquire(timeout=0.5):
            if self._stop.is_set():
                return 0
        taken = 1
        while taken < self.route.concurrency and self._slots.acquire(blocking=False):
            taken += 1
        return taken

    def _loop(self) -> None:
        idle = IDLE_POLL_S[0]
        while not self._stop.is_set():
            free = self._free_slots()
            if not free:
                return
            try:
                response = self.subscriber.pull(
                    subscription=self.route.subscription,
                    max_messages=free,
                    return_immediately=True,
                    timeout=30,
                )
                received = list(response.received_messages)
            except (gexc.GoogleAPICallError, gexc.RetryError):
                received = []  # the emulator restarting or gone: try again
            for _ in range(free - len(received)):
                self._slots.release()
            for message in received:
                self.counts.start()
                self._pool.submit(self._deliver, message)
            if received:
                idle = IDLE_POLL_S[0]
            else:
                self._stop.wait(idle)
                idle = min(idle * 2, IDLE_POLL_S[1])

    def _deliver(self, received: Any) -> None:
        acked, status = False, 0
        try:
            status = post(
                self.route.endpoint,
                push_body(self.route.subscription, received),
                self.route.ack_deadline_s,
            )
            acked = status in SUCCESS
            with contextlib.suppress(gexc.GoogleAPICallError, gexc.RetryError):
                if acked:
                    self.subscriber.acknowledge(
                        subscription=self.route.subscription, ack_ids=[received.ack_id]
                    )
                else:
                    self.subscriber.modify_ack_deadline(
                        subscription=self.route.subscription,
                        ack_ids=[received.ack_id],
                        ack_deadline_seconds=0,
                    )
        finally:
            self.counts.end(acked, status)
            self._slots.release()


def _stats_server(port: int, relays: list[Relay]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path, _, query = self.path.partition("?")
            if path not in ("/stats", "/healthz"):
                self.send_error(404)
                return
            reset = query == "reset_peak=1"
            body = json.dumps({r.route.subscription: r.counts.snapshot(reset) for r in relays})
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


def stats(port: int, reset_peak: bool = False) -> dict[str, dict[str, int]]:
    """The running relay's counts, by subscription path; ``reset_peak`` starts a new window
    for each peak (after this answer)."""
    url = f"http://127.0.0.1:{port}/stats" + ("?reset_peak=1" if reset_peak else "")
    with urllib.request.urlopen(url, timeout=2) as resp:
        return json.loads(resp.read())


def load_routes(path: Path) -> list[Route]:
    return [Route(**entry) for entry in json.loads(path.read_text())]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.push_relay", description=__doc__)
    parser.add_argument("--routes", type=Path, required=True, help="JSON list of routes")
    parser.add_argument("--port", type=int, required=True, help="port of GET /stats")
    parser.add_argument("--pubsub", required=True, help="the Pub/Sub emulator's host:port")
    args = parser.parse_args(argv)
    from shared.clients import subscriber_client
    from shared.settings import Settings

    # Through the platform's factory: a channel that takes Pub/Sub's 10 MB messages.
    subscriber = subscriber_client(Settings(project="relay", pubsub_emulator_host=args.pubsub))
    relays = [Relay(subscriber, route).start() for route in load_routes(args.routes)]
    server = _stats_server(args.port, relays)
    try:
        server.serve_forever()
    finally:
        for relay in relays:
            relay.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
