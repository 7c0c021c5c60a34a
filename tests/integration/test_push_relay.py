"""The stack's push relay (local/push_relay.py) against the real Pub/Sub emulator: deliveries
overlap up to the function's instances and never beyond, each message is acked once, a
failing endpoint gets the retry policy and the dead-letter topic, as from the service."""

import base64
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from google.cloud import pubsub_v1

from local.push_relay import Relay, Route, stats
from shared import clients

from .helpers import function_logs, wait_for
from .test_fetch_pipeline import publish_request, wait_manifest


class Endpoint:
    """A push endpoint that takes ``delay_s`` per request and answers ``status``; it records
    every body and the most requests it had at once."""

    def __init__(self, delay_s: float, status: int = 204) -> None:
        self.delay_s, self.status = delay_s, status
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
                time.sleep(outer.delay_s)
                with outer.lock:
                    outer.active -= 1
                self.send_response(outer.status)
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


def test_deliveries_overlap_up_to_the_cap_and_each_message_is_acked_once(pubsub):
    publisher, subscriber, topic, sub, _ = pubsub
    endpoint = Endpoint(delay_s=0.5)
    relay = Relay(subscriber, Route(sub, endpoint.url, concurrency=4, ack_deadline_s=30))
    sent = [f"m{i}".encode() for i in range(12)]
    for data in sent:
        publisher.publish(topic, data, run="r1").result()
    relay.start()
    try:
        assert wait_for(lambda: relay.counts.snapshot()["acked"] >= 12, timeout_s=30)
        time.sleep(1.5)  # a redelivery, if any, would arrive now
    finally:
        relay.stop()
        endpoint.close()
    counts = relay.counts.snapshot()
    assert counts["delivered"] == 12 and counts["acked"] == 12 and counts["nacked"] == 0
    assert endpoint.peak == 4 and counts["peak_in_flight"] == 4  # overlapping, and capped
    got = sorted(base64.b64decode(b["message"]["data"]) for b in endpoint.bodies)
    assert got == sorted(sent)
    first = endpoint.bodies[0]
    assert first["subscription"] == sub and first["message"]["attributes"] == {"run": "r1"}
    assert len({b["message"]["messageId"] for b in endpoint.bodies}) == 12


def test_a_failing_endpoint_gets_retries_then_the_dead_letter_topic(pubsub):
    publisher, subscriber, topic, sub, dead_sub = pubsub
    endpoint = Endpoint(delay_s=0.0, status=500)
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


def test_the_stacks_fan_out_runs_its_workers_at_once_within_max_instances(stack, settings, retail):
    """The fetch fan-out through the stack's relay: the fetch subscription's deliveries
    overlap (the emulator's own push kept two in flight) and stay within the dev
    environment's fetch instances (8)."""
    from local.stack import push_routes

    route = next(r for r in push_routes(stack) if "fetch-chunk" in r["subscription"])
    assert route["concurrency"] == 8
    before = stats(stack.push_relay_port, reset_peak=True)[route["subscription"]]
    request = publish_request(settings, parallelism=8)
    assert wait_manifest(settings, request) is not None
    after = stats(stack.push_relay_port)[route["subscription"]]
    worked = function_logs(stack, "fetch_chunk", run_id=request.run_id)
    assert after["delivered"] - before["delivered"] >= len(worked) > 0
    assert 2 < after["peak_in_flight"] <= 8
