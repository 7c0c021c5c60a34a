"""Helpers for tests on the local stack: taps on topics, function logs, polling."""

from __future__ import annotations

import contextlib
import json
import time
import uuid

from local.demo import wait_for  # noqa: F401 - one polling helper for demo and tests
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

    def close(self):
        with contextlib.suppress(Exception):
            self.subscriber.delete_subscription(subscription=self.path)


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
