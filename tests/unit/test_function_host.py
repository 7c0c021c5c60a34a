"""The local function host refuses what Cloud Run refuses: beyond max instances x concurrency
a request is answered 429 at once, not queued."""

import threading
import urllib.error
import urllib.request

from werkzeug.serving import make_server

from local.function_host import Capacity, host_stats


def serve(capacity: int):
    gate, inside = threading.Event(), threading.Semaphore(0)

    def held(environ, start_response):
        inside.release()
        gate.wait(30)
        start_response("204 No Content", [])
        return [b""]

    server = make_server("127.0.0.1", 0, Capacity(held, capacity), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, gate, inside


def post(port: int) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/", data=b"{}", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_request_beyond_the_capacity_is_refused_at_once_and_the_others_are_served():
    server, gate, inside = serve(capacity=2)
    port = server.server_port
    answers: list[int] = []
    held = [threading.Thread(target=lambda: answers.append(post(port))) for _ in range(2)]
    try:
        for thread in held:
            thread.start()
        assert inside.acquire(timeout=10) and inside.acquire(timeout=10)  # both slots taken
        assert post(port) == 429  # answered while the two are still held: not queued
        assert host_stats(port) == {
            "capacity": 2, "in_flight": 2, "peak": 2, "served": 0, "refused": 1
        }  # fmt: skip
        gate.set()
        for thread in held:
            thread.join(30)
        assert answers == [204, 204]
        assert post(port) == 204  # a slot is free again
        assert host_stats(port)["served"] == 3
    finally:
        gate.set()
        server.shutdown()
