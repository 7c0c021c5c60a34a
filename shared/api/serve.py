"""The API as the container runs it: gunicorn on a private port, the front
(``shared/api/front.py``) on the service's port, so slow clients meet the front, never a worker.

    python -m shared.api.serve [--port N]     # default: $PORT, as Cloud Run sets it

The process ends when gunicorn does (Cloud Run then starts another instance).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
import time

BACKEND_HOST = "127.0.0.1"


def gunicorn_argv(bind: str) -> list[str]:
    """gunicorn with the API's worker: threads for requests that arrive whole."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        bind,
        "--worker-class",
        "shared.api.server.JsonErrorsThreadWorker",
        "--workers",
        "2",
        "--threads",
        "32",
        "--timeout",
        "0",
        "--log-level",
        "warning",
        # Its default control socket is shared by every gunicorn of the user (~/.gunicorn).
        "--no-control-socket",
        "shared.api.wsgi:app",
    ]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((BACKEND_HOST, 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn exited with {proc.returncode} before serving")
        with socket.socket() as sock:
            if sock.connect_ex((BACKEND_HOST, port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"gunicorn did not listen on {port} within {timeout_s:.0f} s")


def main(argv: list[str] | None = None) -> int:
    from shared.api.front import serve
    from shared.api.schemas import MAX_BODY_BYTES
    from shared.settings import Settings

    parser = argparse.ArgumentParser(prog="python -m shared.api.serve", description=__doc__)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, help="default: $PORT")
    args = parser.parse_args(argv)
    port = args.port or Settings.from_env(project_required=False).port
    backend = _free_port()
    proc = subprocess.Popen(gunicorn_argv(f"{BACKEND_HOST}:{backend}"))

    def stop(signum: int, _frame: object) -> None:
        """Cloud Run (or the stack) stops the instance: gunicorn stops with it."""
        proc.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        _wait_listening(backend, proc)

        async def run() -> None:
            front = asyncio.create_task(serve(port, (BACKEND_HOST, backend), MAX_BODY_BYTES,
                                              args.host))  # fmt: skip
            while proc.poll() is None:
                await asyncio.sleep(0.2)
            front.cancel()

        with contextlib.suppress(asyncio.CancelledError, KeyboardInterrupt):
            asyncio.run(run())
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)
    return proc.returncode or 0


if __name__ == "__main__":
    raise SystemExit(main())
