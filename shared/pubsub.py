"""Pub/Sub glue for function entry points: decode a push delivery, run the core, publish.

A Pub/Sub push reaches a functions-framework ``cloud_event`` handler as a CloudEvent of type
``google.cloud.pubsub.topic.v1.messagePublished``. :func:`handle` turns it into a typed contract
and applies the error tree: a :class:`PermanentError` is logged with its reason and acknowledged
(returning normally), anything else propagates, becomes HTTP 500, and Pub/Sub redelivers it with
backoff until the dead-letter policy takes it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1
from pydantic import BaseModel

from shared.errors import MalformedMessage, PermanentError, is_permanent
from shared.log import get_logger
from shared.messages import Contract, dump, parse

log = get_logger("shared.pubsub")
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Delivery:
    """One delivered Pub/Sub message, independent of how it arrived."""

    topic: str
    message_id: str
    data: bytes
    attributes: dict[str, str] = field(default_factory=dict)
    published: dt.datetime | None = None

    def age_s(self) -> float:
        """Seconds since the message was published (0 when the push did not say)."""
        if self.published is None:
            return 0.0
        return (dt.datetime.now(dt.UTC) - self.published).total_seconds()


def delivery_from_event(event: Any, topic: str) -> Delivery:
    """Decode a functions-framework CloudEvent carrying a Pub/Sub message."""
    payload = event.data if hasattr(event, "data") else event
    message = payload.get("message") if isinstance(payload, dict) else None
    if not isinstance(message, dict):
        raise MalformedMessage(topic, "message", "no Pub/Sub message in the event")
    try:
        data = base64.b64decode(message.get("data") or "", validate=True)
    except (binascii.Error, TypeError) as exc:
        raise MalformedMessage(topic, "message.data", f"not base64: {exc}") from None
    message_id = str(message.get("messageId") or message.get("message_id") or "")
    published = None
    with contextlib.suppress(TypeError, ValueError):
        stamp = str(message.get("publishTime") or message.get("publish_time") or "")
        published = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else None
    attributes = dict(message.get("attributes") or {})
    return Delivery(topic, message_id, data, attributes, published)


def handle(
    event: Any,
    topic: str,
    model: type[M],
    process: Callable[[M, Delivery], object],
    function: str,
    on_permanent: Callable[[M, Delivery, Exception], object] | None = None,
    iam_propagation_s: float = 0.0,
) -> object | None:
    """Parse ``event`` as ``model`` and run ``process``; acknowledge permanent failures.

    ``on_permanent`` is told about a permanent failure of a well-formed message (e.g. to
    declare its run failed with the reason, so nobody waits for it). A 403 on a message
    younger than ``iam_propagation_s`` is redelivered: the grant may not have arrived yet."""
    delivery: Delivery | None = None
    message: M | None = None

    def labels(exc: Exception, outcome: str) -> dict:
        return {
            "function": function,
            "topic": topic,
            "message_id": delivery.message_id if delivery else None,
            "error_type": type(exc).__name__,
            "outcome": outcome,
        }

    def reject(refusal: Exception, extra: dict) -> None:
        """Retrying will not fix this: record it on the run, log why; the caller returns so
        the message is acknowledged."""
        if on_permanent is not None and message is not None and delivery is not None:
            try:
                on_permanent(message, delivery, refusal)
            except Exception as hook_exc:  # the refusal stands; say why it was not recorded
                log.error("%s could not record the failure: %s", function, hook_exc)
        log.error("%s rejected a %s message: %s", function, topic, refusal, extra=extra)

    try:
        delivery = delivery_from_event(event, topic)
        message = parse(model, delivery.data, topic)
        return process(message, delivery)
    except PermanentError as exc:
        reject(
            exc,
            {
                **labels(exc, "acknowledged"),
                "field": getattr(exc, "field", None),
                "run_id": getattr(getattr(exc, "message", None), "run_id", None),
            },
        )
        return None
    except Exception as exc:
        propagating = delivery is not None and delivery.age_s() < iam_propagation_s
        if isinstance(exc, gexc.ClientError) and is_permanent(exc, propagating=propagating):
            # A Google API answered 4xx: the request itself is wrong (bad SQL, a missing
            # bucket, a denied permission). Say what the API said, acknowledge.
            refusal = PermanentError(f"{exc.code} {type(exc).__name__}: {exc.message}")
            reject(refusal, {**labels(exc, "acknowledged"), "api_status": exc.code})
            return None
        # Anything else may pass (a service down, a quota, a race): fail the delivery so
        # Pub/Sub redelivers it with backoff, and after the last attempt moves it to the
        # dead-letter topic.
        log.error(
            "%s failed on a %s message, to be redelivered: %s: %s",
            function,
            topic,
            type(exc).__name__,
            exc,
            extra=labels(exc, "retry"),
        )
        raise


def publish_all(
    publisher: pubsub_v1.PublisherClient,
    project: str,
    topic: str,
    messages: Iterable[Contract],
    timeout_s: float = 60.0,
) -> list[str]:
    """Publish ``messages`` to ``topic`` and wait until every one is accepted; returns ids."""
    path = publisher.topic_path(project, topic)
    futures = [publisher.publish(path, dump(message)) for message in messages]
    return [future.result(timeout=timeout_s) for future in futures]
