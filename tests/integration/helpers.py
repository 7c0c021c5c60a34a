"""Helpers for tests on the local stack: taps on topics, function logs, polling."""

from __future__ import annotations

import contextlib
import json
import time
import uuid

from local.demo import wait_for
from shared import clients


class Tap:
    """A pull subscription on a topic, to see what a function published."""

    def __init__(self, settings, topic):
        self.subscriber = clients.subscriber_client(settings)
        publisher = clients.publisher_client(settings)
        self.path = self.subscriber.subscription_path(
            settings.project, f"tap-{uuid.uuid4().hex[:10]}"
        )
        self.subscriber.create_subscription(
            name=self.path, topic=publisher.topic_path(settings.project, settings.topic(topic))
        )
        self.messages: list[bytes] = []

    def drain(self, timeout_s=2.0) -> list[bytes]:
        """Pull until nothing new arrives for ``timeout_s``."""
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < timeout_s:
            response = self.subscriber.pull(
                subscription=self.path, max_messages=100, timeout=5, return_immediately=False
            )
            if response.received_messages:
                self.subscriber.acknowledge(
                    subscription=self.path, ack_ids=[m.ack_id for m in response.received_messages]
                )
                self.messages.extend(m.message.data for m in response.received_messages)
                quiet_since = time.monotonic()
        return self.messages

    def drain_now(self) -> list[bytes]:
        """Every message the topic holds now: pull until a pull finds none. For after an
        observable end (the publishing calls returned), when nothing is still on its way."""
        while True:
            response = self.subscriber.pull(
                subscription=self.path, max_messages=100, return_immediately=True
            )
            if not response.received_messages:
                return self.messages
            self.subscriber.acknowledge(
                subscription=self.path, ack_ids=[m.ack_id for m in response.received_messages]
            )
            self.messages.extend(m.message.data for m in response.received_messages)

    def close(self):
        with contextlib.suppress(Exception):
            self.subscriber.delete_subscription(subscription=self.path)


def relay_counts(stack, subscription: str) -> dict[str, int]:
    """The stack's push relay's counts (delivered, acked, nacked, in flight) for one of the
    environment's subscriptions (its base name, e.g. ``finalize-fetch``)."""
    from local.push_relay import stats

    path = f"projects/{stack.project}/subscriptions/{stack.names.subscription(subscription)}"
    return stats(stack.push_relay_port)[path]


def wait_answered(stack, subscription: str, before: dict[str, int], deliveries: int) -> dict:
    """Wait until the relay has had ``deliveries`` more answers (acked or nacked) on
    ``subscription`` than ``before`` and none is in flight: an observable end, after which
    what those deliveries did is done. Returns the counts then."""

    def answered() -> dict | None:
        now = relay_counts(stack, subscription)
        done = (now["acked"] + now["nacked"]) - (before["acked"] + before["nacked"])
        return now if done >= deliveries and now["in_flight"] == 0 else None

    counts = wait_for(answered, timeout_s=90)
    assert counts, f"{subscription}: fewer than {deliveries} deliveries answered"
    return counts


def function_logs(stack, entry_point, **match) -> list[dict]:
    """JSON log lines of a function process whose fields equal ``match``."""
    path = stack.log_dir / f"function-{entry_point}.log"
    found = []
    for raw in path.read_text(errors="replace").splitlines():
        if not raw.startswith("{"):
            continue
        with contextlib.suppress(ValueError):
            entry = json.loads(raw)
            if all(entry.get(k) == v for k, v in match.items()):
                found.append(entry)
    return found
