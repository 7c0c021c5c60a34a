"""The API's gunicorn worker: gthread, with the errors gunicorn answers by itself (414 URI too
long, 431 headers too large, 400 for a malformed request line) in the API's JSON error shape
instead of gunicorn's HTML page; and :class:`BodyDeadline`, which stops a slowly trickled body
from holding a server thread.

    gunicorn -k shared.api.server.JsonErrorsThreadWorker 'shared.api.wsgi:app'
"""

from __future__ import annotations

import io
import json
import socket
import time
from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker


def write_json_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's error writer, answering ``{"error": {status, reason, field}}``."""
    body = json.dumps(
        {"error": {"status": status_int, "reason": f"{reason}: {mesg}" if mesg else reason,
                   "field": None}}
    ).encode()  # fmt: skip
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin1") + body)


# gunicorn writes these errors through util.write_error; in the API's server processes (the
# only ones that import this worker) they come out as JSON.
util.write_error = write_json_error


class JsonErrorsThreadWorker(ThreadWorker):
    """gunicorn's gthread worker; importing it switches gunicorn's own errors to JSON."""


class BodyDeadline:
    """WSGI middleware: a request body must arrive within ``seconds`` (and each read within
    ``idle_s``), so a client that sends its headers and then trickles the body cannot hold a
    server thread for long. A late body is answered 408."""

    def __init__(
        self, app: Any, seconds: float = 10.0, idle_s: float = 5.0, max_bytes: int = 1 << 20
    ) -> None:
        self.app, self.seconds, self.idle_s, self.max_bytes = app, seconds, idle_s, max_bytes

    def __call__(self, environ: dict, start_response: Any) -> Any:
        sock = environ.get("gunicorn.socket")
        length = environ.get("CONTENT_LENGTH") or "0"
        if sock is None or not length.isdigit() or not 0 < int(length) <= self.max_bytes:
            # Nothing to read, or more than the app accepts: the app answers (413) unread.
            return self.app(environ, start_response)
        deadline = time.monotonic() + self.seconds
        sock.settimeout(self.idle_s)
        body, wanted = b"", int(length)
        stream = environ["wsgi.input"]
        try:
            while len(body) < wanted and time.monotonic() < deadline:
                chunk = stream.read(min(65536, wanted - len(body)))
                if not chunk:
                    break
                body += chunk
        except OSError:  # socket.timeout: idle for idle_s
            pass
        finally:
            sock.settimeout(None)
        if len(body) < wanted:
            payload = json.dumps(
                {"error": {"status": 408, "reason": f"request body not received within "
                           f"{self.seconds:.0f} s", "field": None}}
            ).encode()  # fmt: skip
            start_response(
                "408 Request Timeout",
                [("Content-Type", "application/json"), ("Content-Length", str(len(payload))),
                 ("Connection", "close")],
            )  # fmt: skip
            return [payload]
        environ["wsgi.input"] = io.BytesIO(body)
        return self.app(environ, start_response)
