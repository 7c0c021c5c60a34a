"""Every BigQuery request gives up within the deadline (issue 14, part 2): a service that
answers 500 forever once kept plan_fetch in client retries for 600 s, past its 540 s budget."""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials

from shared.clients import API_DEADLINE_S, BQ_CALL, BQ_RETRY


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


def test_a_request_retried_on_500_gives_up_at_the_deadline(failing_endpoint):
    """The fetch's BigQuery calls carry the library's own retry bounded by a deadline
    (``clients.BQ_CALL``); the library's default retries a 500 for 600 s."""
    from google.api_core import exceptions as gexc
    from google.cloud import bigquery

    client = bigquery.Client(
        project="p-1",
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=failing_endpoint),
    )
    bounded = {**BQ_CALL, "retry": BQ_RETRY.with_timeout(3.0)}
    started = time.monotonic()
    with pytest.raises(gexc.RetryError) as gave_up:
        client.get_table("p-1.retail.transactions", **bounded)
    elapsed = time.monotonic() - started
    assert isinstance(gave_up.value.cause, gexc.InternalServerError)  # what the service said
    assert AlwaysFailing.calls >= 2  # it did retry
    # Stopped at the deadline (plus one backoff), not after the default's 600 s; a bound that
    # holds on a loaded machine.
    assert elapsed < 60
    assert BQ_RETRY.timeout == API_DEADLINE_S == BQ_CALL["timeout"]
