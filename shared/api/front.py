"""The API's front: slow clients are absorbed here, in front of the workers.

A gunicorn thread reads a request's body itself, so 64 clients trickling a body a byte a
second held every thread and ``/healthz`` went unanswered (threads are not a defence: there
are always more slow clients than threads). This front is one asyncio process: it reads each
request whole (the head within 10 s and at most 16 KiB, the body within 10 s and at most
``MAX_BODY_BYTES``, by its ``Content-Length``), costing a slow client a coroutine and a
buffer, and only then hands it to gunicorn on a private port, which answers at memory speed.
A body that does not arrive in time is answered 408, a larger one 413 without being read, a
head too large 431, one without a length 411; every answer of the front is the API's JSON
error.

    python -m shared.api.front --port 8080 --backend 127.0.0.1:8081
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re

HEAD_LIMIT = 16 * 1024
HEAD_DEADLINE_S = 10.0
BODY_DEADLINE_S = 10.0
_LENGTH = re.compile(rb"^content-length:\s*(\d+)\s*$", re.I | re.M)
_CHUNKED = re.compile(rb"^transfer-encoding:.*chunked", re.I | re.M)
_CONNECTION = re.compile(rb"^(connection|keep-alive):[^\r\n]*\r\n", re.I | re.M)


def error(status: int, reason: str, message: str) -> bytes:
    """A complete HTTP response carrying the API's JSON error."""
    body = json.dumps({"error": {"status": status, "reason": message, "field": None}}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("latin1") + body


async def read_request(reader: asyncio.StreamReader, max_body: int) -> bytes:
    """The whole request, or an error response (bytes starting ``HTTP/``) to send instead."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_DEADLINE_S)
    except asyncio.LimitOverrunError:
        return error(431, "Request Header Fields Too Large", "request head too large")
    except asyncio.IncompleteReadError:
        return b""  # the client went away
    except TimeoutError:
        return error(
            408, "Request Timeout", f"request head not received within {HEAD_DEADLINE_S:.0f} s"
        )
    if _CHUNKED.search(head):
        return error(411, "Length Required", "send the body with a Content-Length")
    found = _LENGTH.search(head)
    length = int(found.group(1)) if found else 0
    if length > max_body:
        return error(413, "Payload Too Large", f"request body over {max_body} bytes")
    try:
        body = await asyncio.wait_for(reader.readexactly(length), BODY_DEADLINE_S)
    except asyncio.IncompleteReadError:
        return b""
    except TimeoutError:
        return error(
            408, "Request Timeout", f"request body not received within {BODY_DEADLINE_S:.0f} s"
        )
    # One request per connection to the backend: it closes when it has answered.
    head = _CONNECTION.sub(b"", head[:-2]) + b"Connection: close\r\n\r\n"
    return head + body


async def handle(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    backend: tuple[str, int],
    max_body: int,
) -> None:
    try:
        request = await read_request(reader, max_body)
        if request.startswith(b"HTTP/"):
            writer.write(request)
        elif request:
            up_reader, up_writer = await asyncio.open_connection(*backend)
            try:
                up_writer.write(request)
                await up_writer.drain()
                while chunk := await up_reader.read(65536):
                    writer.write(chunk)
                    await writer.drain()
            finally:
                up_writer.close()
        await writer.drain()
    except (ConnectionError, OSError):
        pass  # either side went away: nothing to answer
    finally:
        writer.close()


async def serve(port: int, backend: tuple[str, int], max_body: int, host: str = "0.0.0.0") -> None:
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, backend, max_body), host, port, limit=HEAD_LIMIT
    )
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    from shared.api.schemas import MAX_BODY_BYTES

    parser = argparse.ArgumentParser(prog="python -m shared.api.front", description=__doc__)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backend", required=True, help="host:port of gunicorn")
    args = parser.parse_args(argv)
    host, _, port = args.backend.rpartition(":")
    asyncio.run(serve(args.port, (host, int(port)), MAX_BODY_BYTES, args.host))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
