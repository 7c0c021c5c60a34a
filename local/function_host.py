"""One function of ``functions/main.py`` served as Cloud Run serves a deployed function: at most
``max_instances x concurrency`` requests at once, and a request beyond that answered **429 at
once** (Cloud Run's answer when every instance is busy), never queued.

    python -m local.function_host --target fetch_chunk --source functions/main.py \\
        --host 127.0.0.1 --port 8103 --capacity 32 --threads 80

Served by functions-framework's own app and gunicorn with a thread for every request the push
relay may send at once (``--threads``, more than the capacity: a refusal is answered at once
while the capacity is busy) and without gunicorn's control socket
(every gunicorn of the user would share ``~/.gunicorn/gunicorn.ctl``, which another stack's
``down`` can remove). ``GET /_local/stats`` answers the counts: capacity, in flight, the peak,
served and refused.
"""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Callable, Iterable
from typing import Any

STATS_PATH = "/_local/stats"

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WsgiApp = Callable[[Environ, StartResponse], Iterable[bytes]]


class Capacity:
    """WSGI middleware: serve at most ``capacity`` requests at once, refuse the rest with 429."""

    def __init__(self, app: WsgiApp, capacity: int) -> None:
        self.app, self.capacity = app, capacity
        self.in_flight = self.peak = self.served = self.refused = 0
        self._lock = threading.Lock()

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {
                "capacity": self.capacity,
                "in_flight": self.in_flight,
                "peak": self.peak,
                "served": self.served,
                "refused": self.refused,
            }

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == STATS_PATH:
            return _json(start_response, "200 OK", self.counts())
        with self._lock:
            if self.in_flight >= self.capacity:
                self.refused += 1
                full = True
            else:
                full = False
                self.in_flight += 1
                self.peak = max(self.peak, self.in_flight)
        if full:
            # Read the body first: a client still sending it would see a reset, not the 429.
            _drain(environ)
            reason = {"error": f"all {self.capacity} request slots are busy; retry later"}
            return _json(start_response, "429 Too Many Requests", reason)
        try:
            return list(self.app(environ, start_response))  # done before the slot is freed
        finally:
            with self._lock:
                self.in_flight -= 1
                self.served += 1


def _drain(environ: Environ) -> None:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    stream = environ.get("wsgi.input")
    while length > 0 and stream is not None:
        chunk = stream.read(min(length, 1 << 16))
        if not chunk:
            return
        length -= len(chunk)


def _json(start_response: StartResponse, status: str, body: dict) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    )
    return [data]


def host_stats(port: int, host: str = "127.0.0.1") -> dict[str, int]:
    """The counts of the function host on ``port``."""
    import urllib.request

    with urllib.request.urlopen(f"http://{host}:{port}{STATS_PATH}", timeout=2) as resp:
        return json.loads(resp.read())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.function_host", description=__doc__)
    parser.add_argument("--target", required=True, help="entry point in the source file")
    parser.add_argument("--source", required=True, help="functions/main.py")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--capacity", type=int, required=True, help="max instances x concurrency")
    parser.add_argument("--threads", type=int, required=True, help="more than the capacity")
    args = parser.parse_args(argv)

    import functions_framework
    from functions_framework._http.gunicorn import GunicornApplication

    app = functions_framework.create_app(args.target, args.source, "cloudevent")
    app.wsgi_app = Capacity(app.wsgi_app, args.capacity)  # type: ignore[method-assign]
    GunicornApplication(
        app,
        args.host,
        args.port,
        False,
        threads=max(args.threads, args.capacity + 1),
        workers=1,
        timeout=0,
        control_socket_disable=True,
    ).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
