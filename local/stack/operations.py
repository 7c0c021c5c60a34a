"""Operating a running stack: dead letters counted and redriven, recent fetch runs."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.fetch.runs import RunState
from local.stack.config import StackConfig


def redrive(cfg: StackConfig) -> Counter[str]:
    """Publish every dead-lettered message again to the topic it came from; returns counts.

    For after the cause is fixed (a bucket created, a service back): nothing is lost meanwhile.
    """
    from shared import clients, topology
    from shared.settings import Settings

    settings = Settings.from_env(cfg.client_env())
    subscriber = clients.subscriber_client(settings)
    publisher = clients.publisher_client(settings)
    names = cfg.names
    topic_of = {names.subscription(sub.name): sub.topic for sub in topology.SUBSCRIPTIONS}
    path = subscriber.subscription_path(
        cfg.project, names.subscription(topology.DEAD_LETTER_SUBSCRIPTION)
    )
    counts: Counter[str] = Counter()
    while True:
        response = subscriber.pull(subscription=path, max_messages=100, timeout=5)
        if not response.received_messages:
            return counts
        for m in response.received_messages:
            source = m.message.attributes.get("CloudPubSubDeadLetterSourceSubscription", "")
            topic = topic_of.get(source.rsplit("/", 1)[-1])
            if topic is None:
                subscriber.modify_ack_deadline(
                    subscription=path, ack_ids=[m.ack_id], ack_deadline_seconds=0
                )
                continue
            attributes = {
                k: v for k, v in m.message.attributes.items() if not k.startswith("CloudPubSub")
            }
            publisher.publish(
                publisher.topic_path(cfg.project, names.topic(topic)), m.message.data, **attributes
            ).result()
            subscriber.acknowledge(subscription=path, ack_ids=[m.ack_id])
            counts[topic] += 1


def dead_letters(cfg: StackConfig, limit: int = 1000) -> Counter[str]:
    """Messages waiting on the dead-letter subscription, by the subscription that gave up.

    They are pulled and at once handed back (ack deadline 0), so looking does not consume them.
    """
    from shared import clients, topology
    from shared.settings import Settings

    subscriber = clients.subscriber_client(Settings.from_env(cfg.client_env()))
    path = subscriber.subscription_path(
        cfg.project, cfg.names.subscription(topology.DEAD_LETTER_SUBSCRIPTION)
    )
    counts: Counter[str] = Counter()
    seen: set[str] = set()
    while len(seen) < limit:
        response = subscriber.pull(subscription=path, max_messages=100, timeout=5)
        fresh = [m for m in response.received_messages if m.message.message_id not in seen]
        if response.received_messages:
            subscriber.modify_ack_deadline(
                subscription=path,
                ack_ids=[m.ack_id for m in response.received_messages],
                ack_deadline_seconds=0,
            )
        if not fresh:
            break
        for m in fresh:
            seen.add(m.message.message_id)
            source = m.message.attributes.get("CloudPubSubDeadLetterSourceSubscription", "?")
            counts[source.rsplit("/", 1)[-1].removeprefix(cfg.names.prefix)] += 1
    return counts


def recent_runs(cfg: StackConfig, limit: int = 10) -> list[RunState]:
    """The newest fetch runs under the data bucket's fetch/ prefix and what each came to."""
    from shared import clients
    from shared.fetch.runs import recent
    from shared.settings import Settings

    settings = Settings.from_env(cfg.client_env())
    return recent(clients.storage_client(settings), settings.fetch_destinations[0], limit)


def deliveries(cfg: StackConfig) -> dict[str, dict[str, int]]:
    """Per function: the push relay's counts for its subscription (delivered, acked, refused
    with 429, in flight) and what its host served (capacity, peak at once)."""
    from local.function_host import host_stats
    from local.push_relay import stats
    from shared import topology

    relayed = stats(cfg.push_relay_port)
    out = {}
    for sub in topology.SUBSCRIPTIONS:
        path = f"projects/{cfg.project}/subscriptions/{cfg.names.subscription(sub.name)}"
        host = host_stats(cfg.function_port(sub.entry_point))
        counts = relayed.get(path, {})
        out[sub.entry_point] = {
            "delivered": counts.get("delivered", 0),
            "acked": counts.get("acked", 0),
            "refused_429": counts.get("refused", 0),
            "capacity": host["capacity"],
            "peak": host["peak"],
        }
    return out
