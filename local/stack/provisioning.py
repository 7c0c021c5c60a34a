"""Provisioning: the environment's topics, push subscriptions, buckets, datasets and secrets,
named as Terraform names them, from ``shared/platform.yaml``."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from local.stack.config import StackConfig


def ensure_resources(cfg: StackConfig, say: Callable[[str], None]) -> None:
    """Topics, push subscriptions, buckets, datasets and secrets of the environment, named as
    Terraform names them, from the one declaration in ``shared/platform.yaml``."""
    from google.api_core import exceptions as gexc
    from google.cloud import pubsub_v1

    from shared import clients, topology
    from shared.platform import declaration
    from shared.settings import Settings

    names = cfg.names
    settings = Settings.from_env(cfg.client_env())
    publisher = clients.publisher_client(settings)
    subscriber = clients.subscriber_client(settings)
    for topic in topology.TOPICS:
        with contextlib.suppress(gexc.AlreadyExists):
            publisher.create_topic(name=publisher.topic_path(cfg.project, names.topic(topic)))
    dead_letter = publisher.topic_path(cfg.project, names.topic(topology.DEAD_LETTER))
    with contextlib.suppress(gexc.AlreadyExists):
        subscriber.create_subscription(
            name=subscriber.subscription_path(
                cfg.project, names.subscription(topology.DEAD_LETTER_SUBSCRIPTION)
            ),
            topic=dead_letter,
        )
    for sub in topology.SUBSCRIPTIONS:
        # Deployed, the subscription pushes; here local/push_relay.py pulls and pushes, as
        # concurrently as the service (the emulator's own push keeps two in flight).
        request = pubsub_v1.types.Subscription(
            name=subscriber.subscription_path(cfg.project, names.subscription(sub.name)),
            topic=publisher.topic_path(cfg.project, names.topic(sub.topic)),
            push_config=pubsub_v1.types.PushConfig(),
            ack_deadline_seconds=cfg.ack_deadline_s(sub),
            retry_policy=pubsub_v1.types.RetryPolicy(
                minimum_backoff={"seconds": min(cfg.min_backoff_s, sub.min_backoff_s)},
                maximum_backoff={"seconds": min(cfg.max_backoff_s, sub.max_backoff_s)},
            ),
            dead_letter_policy=pubsub_v1.types.DeadLetterPolicy(
                dead_letter_topic=dead_letter, max_delivery_attempts=sub.max_delivery_attempts
            ),
        )
        try:
            subscriber.create_subscription(request=request)
        except gexc.AlreadyExists:  # a stack of before the relay pushed from the emulator
            subscriber.modify_push_config(
                subscription=request.name, push_config=request.push_config
            )
    storage = clients.storage_client(settings)
    buckets = [names.bucket(key) for key in declaration()["buckets"]]
    for bucket in buckets:
        if storage.lookup_bucket(bucket) is None:
            storage.create_bucket(bucket)
    bq = clients.bigquery_client(settings)
    datasets = [names.dataset(key) for key in ("source", *declaration()["datasets"])]
    for dataset in datasets:
        bq.create_dataset(f"{cfg.project}.{dataset}", exists_ok=True)
    ensure_secrets(cfg, settings)
    say(
        f"  {'topology':<28} env {cfg.environment} (prefix {names.prefix!r}): "
        f"{len(topology.TOPICS)} topics, {len(topology.SUBSCRIPTIONS)} push subscriptions, "
        f"buckets {', '.join(buckets)}, datasets {', '.join(datasets)}"
    )


def ensure_secrets(cfg: StackConfig, settings: object) -> None:
    """The artifact-keys secret with a first version (what the deployment guide's bootstrap
    adds), holding the stack's keys."""
    from google.api_core import exceptions as gexc

    from shared import clients

    client = clients.secret_client(settings)
    name = f"projects/{cfg.project}/secrets/{cfg.names.secret('artifact_keys')}"
    try:
        client.access_secret_version(name=f"{name}/versions/latest")
        return
    except gexc.NotFound:
        pass
    with contextlib.suppress(gexc.AlreadyExists):
        client.create_secret(
            parent=f"projects/{cfg.project}",
            secret_id=cfg.names.secret("artifact_keys"),
            secret={"replication": {"automatic": {}}},
        )
    keys = (cfg.state_dir / "artifact-keys").read_text().strip()
    client.add_secret_version(parent=name, payload={"data": keys.encode()})
