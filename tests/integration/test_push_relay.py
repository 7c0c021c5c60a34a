"""The stack's push relay (local/push_relay.py) against the real Pub/Sub emulator: deliveries
overlap up to the function's instances and never beyond, each message is acked once, a
failing endpoint gets the retry policy and the dead-letter topic, as from the service."""

import base64
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from google.cloud import pubsub_v1

from local.push_relay import Relay, Route, stats
from local.storage_proxy import Limits, write_control
from shared import clients

from .helpers import function_logs, wait_for
from .test_fetch_pipeline import publish_request, wait_manifest


class Endpoint:
    """A push endpoint that answers ``status``, holding each request until ``gate`` is open
    (open from the start unless ``held``); it records every body and the most requests it
    had at once."""

    def __init__(self, status: int = 204, held: bool = False, first: tuple[int, ...] = ()) -> None:
        self.status = status
        self.first = list(first)  # the answers to the first requests, before ``status``
        self.gate = threading.Event()
        if not held:
            self.gate.set()
        self.bodies: list[dict] = []
        self.active = self.peak = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.bodies.append(body)
                    outer.active += 1
                    outer.peak = max(outer.peak, outer.active)
                outer.gate.wait(60)
                with outer.lock:
                    outer.active -= 1
                    status = outer.first.pop(0) if outer.first else outer.status
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/push"

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def pubsub(stack, settings):
    """A fresh topic with a subscription (5 attempts, then a dead-letter topic)."""
    publisher = clients.publisher_client(settings)
    subscriber = clients.subscriber_client(settings)
    name = f"relay-test-{uuid.uuid4().hex[:8]}"
    topic = publisher.topic_path(stack.project, name)
    dead = publisher.topic_path(stack.project, f"{name}-dead")
    for path in (topic, dead):
        publisher.create_topic(name=path)
    dead_sub = subscriber.subscription_path(stack.project, f"{name}-dead")
    subscriber.create_subscription(name=dead_sub, topic=dead)
    sub = subscriber.subscription_path(stack.project, name)
    subscriber.create_subscription(
        request=pubsub_v1.types.Subscription(
            name=sub,
            topic=topic,
            ack_deadline_seconds=30,
            retry_policy=pubsub_v1.types.RetryPolicy(
                minimum_backoff={"seconds": 0}, maximum_backoff={"seconds": 1}
            ),
            dead_letter_policy=pubsub_v1.types.DeadLetterPolicy(
                dead_letter_topic=dead, max_delivery_attempts=5
            ),
        )
    )
    yield publisher, subscriber, topic, sub, dead_sub
    for path in (sub, dead_sub):
        subscriber.delete_subscription(subscription=path)
    for path in (topic, dead):
        publisher.delete_topic(topic=path)


def drained(subscriber, sub: str) -> bool:
    """Nothing left to deliver: a pull finds no message (every one was acked)."""
    left = subscriber.pull(subscription=sub, max_messages=10, return_immediately=True)
    return not left.received_messages


def test_deliveries_overlap_up_to_the_cap_and_each_message_is_acked_once(pubsub):
    publisher, subscriber, topic, sub, _ = pubsub
    endpoint = Endpoint(held=True)
    relay = Relay(subscriber, Route(sub, endpoint.url, concurrency=4, ack_deadline_s=30))
    sent = [f"m{i}".encode() for i in range(12)]
    for data in sent:
        publisher.publish(topic, data, run="r1").result()
    relay.start()
    try:
        # Held at the endpoint, deliveries pile up to the cap: overlap, whatever the load.
        assert wait_for(lambda: endpoint.active == 4, timeout_s=30)
        endpoint.gate.set()
        assert wait_for(lambda: relay.counts.snapshot()["acked"] >= 12, timeout_s=30)
    finally:
        relay.stop()
        endpoint.close()
    assert drained(subscriber, sub)  # the observable end: no redelivery is pending
    counts = relay.counts.snapshot()
    assert counts["delivered"] == 12 and counts["acked"] == 12 and counts["nacked"] == 0
    # The peak is a running maximum over the whole run: reached, and never exceeded.
    assert endpoint.peak == 4 and counts["peak_in_flight"] == 4
    got = sorted(base64.b64decode(b["message"]["data"]) for b in endpoint.bodies)
    assert got == sorted(sent)
    first = endpoint.bodies[0]
    assert first["subscription"] == sub and first["message"]["attributes"] == {"run": "r1"}
    assert len({b["message"]["messageId"] for b in endpoint.bodies}) == 12


def test_a_failing_endpoint_gets_retries_then_the_dead_letter_topic(pubsub):
    publisher, subscriber, topic, sub, dead_sub = pubsub
    endpoint = Endpoint(status=500)
    relay = Relay(subscriber, Route(sub, endpoint.url, concurrency=4, ack_deadline_s=30))
    publisher.publish(topic, b"poison").result()
    relay.start()
    try:
        dead: list = []

        def dead_lettered() -> bool:
            dead.extend(
                subscriber.pull(
                    subscription=dead_sub, max_messages=1, return_immediately=True
                ).received_messages
            )
            return bool(dead)

        assert wait_for(dead_lettered, timeout_s=60)
    finally:
        relay.stop()
        endpoint.close()
    assert dead[0].message.data == b"poison"
    assert dead[0].message.attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"
    attempts = [b.get("deliveryAttempt") for b in endpoint.bodies]
    assert attempts == [1, 2, 3, 4, 5]
    assert relay.counts.snapshot()["acked"] == 0


def test_a_429_is_a_failed_attempt_redelivered_after_the_backoff_not_a_wait(pubsub):
    """A function whose instances are all busy answers 429: as from the service, the
    delivery failed, the message comes back after the retry policy's backoff."""
    publisher, subscriber, topic, sub, _ = pubsub
    endpoint = Endpoint(first=(429, 429))
    relay = Relay(subscriber, Route(sub, endpoint.url, concurrency=4, ack_deadline_s=30))
    publisher.publish(topic, b"busy").result()
    relay.start()
    try:
        assert wait_for(lambda: relay.counts.snapshot()["acked"] == 1, timeout_s=60)
    finally:
        relay.stop()
        endpoint.close()
    assert drained(subscriber, sub)
    counts = relay.counts.snapshot()
    assert (counts["delivered"], counts["refused"], counts["nacked"]) == (3, 2, 2)
    assert [b.get("deliveryAttempt") for b in endpoint.bodies] == [1, 2, 3]


def test_the_stacks_fan_out_runs_its_workers_at_once_within_the_capacity(stack, settings, retail):
    """The fetch fan-out through the stack's relay: the fetch subscription's deliveries
    overlap (the emulator's own push kept two in flight) and the function host serves at most
    the dev environment's fetch capacity (8 instances x 4 requests); 8 streams fit in it, so
    nothing is refused."""
    from local.function_host import host_stats
    from local.stack import push_routes

    route = next(r for r in push_routes(stack) if "fetch-chunk" in r["subscription"])
    host = host_stats(stack.function_port("fetch_chunk"))
    assert host["capacity"] == 32 and route["concurrency"] > host["capacity"]
    before = stats(stack.push_relay_port, reset_peak=True)[route["subscription"]]
    # Every read slowed to seconds a part (the proxy's rate cap), so the fan-out's deliveries
    # are in flight together however slowly this machine dispatches them.
    write_control(stack.read_proxy_control, Limits(bandwidth_bytes_s=20_000))
    try:
        request = publish_request(settings, parallelism=8)
        assert wait_manifest(settings, request) is not None
    finally:
        write_control(stack.read_proxy_control, None)
    after = stats(stack.push_relay_port)[route["subscription"]]
    worked = function_logs(stack, "fetch_chunk", run_id=request.run_id)
    assert after["delivered"] - before["delivered"] >= len(worked) > 0
    assert after["peak_in_flight"] > 2 and after["refused"] == before["refused"]
    assert host_stats(stack.function_port("fetch_chunk"))["peak"] <= 32
