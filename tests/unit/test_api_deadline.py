"""Every BigQuery request gives up within the deadline (issue 14, part 2): a service that
answers 500 forever once kept plan_fetch in client retries for 600 s, past its 540 s budget."""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials

from shared.clients import API_DEADLINE_S, BoundedBigQueryClient


class AlwaysFailing(BaseHTTPRequestHandler):
    calls = 0

    def do_GET(self):
        AlwaysFailing.calls += 1
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"error": {"code": 500, "message": "backend error"}}')

    def log_message(self, *args):
        pass


@pytest.fixture
def failing_endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), AlwaysFailing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_a_request_retried_on_500_gives_up_at_the_deadline(failing_endpoint, monkeypatch):
    monkeypatch.setattr(BoundedBigQueryClient, "deadline_s", 3.0)
    client = BoundedBigQueryClient(
        project="p-1",
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=failing_endpoint),
    )
    started = time.monotonic()
    with pytest.raises(Exception):  # noqa: B017 - whichever error the library ends with
        client.get_table("p-1.retail.transactions")
    elapsed = time.monotonic() - started
    assert AlwaysFailing.calls >= 2  # it did retry
    assert elapsed < 3.0 + 5.0  # and stopped at the deadline, not after 600 s
    assert API_DEADLINE_S < 540  # the default is inside a function's budget
