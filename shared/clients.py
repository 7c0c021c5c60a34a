"""The one place that builds Google clients: for the cloud, or for the local emulators.

Clients are cached per :class:`Settings` so a warm function instance reuses its connections.
Everything else takes clients as arguments and never builds its own.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery, pubsub_v1, storage
from google.cloud.bigquery_storage_v1 import BigQueryReadClient
from google.cloud.bigquery_storage_v1.services.big_query_read.transports import (
    BigQueryReadGrpcTransport,
)

from shared.settings import Settings

if TYPE_CHECKING:  # loaded by jobs_client() only: the fetch functions start faster without it
    from google.cloud import run_v2

# Arrow record batches of a few MB each, Pub/Sub messages up to 10 MB: gRPC's default 4 MB
# receive cap is too small (the libraries' own channels lift it; channels made here must too).
_GRPC_OPTIONS = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]


# Every BigQuery request of a function gives up well inside its 540 s budget: python-bigquery
# retries a 5xx for up to 600 s by default (one bad request once kept plan_fetch retrying past
# its budget). The fetch passes these, the library's own retry and timeout arguments, to each call.
API_DEADLINE_S = 120.0
BQ_RETRY = bigquery.DEFAULT_RETRY.with_timeout(API_DEADLINE_S)
BQ_CALL: dict[str, Any] = {"retry": BQ_RETRY, "timeout": API_DEADLINE_S}


@dataclass(frozen=True)
class FetchClients:
    """The clients a fetch stage works with, and the project its jobs and sessions bill."""

    bq: bigquery.Client
    read_client: BigQueryReadClient
    gcs: storage.Client
    billing_project: str

    @classmethod
    def of(cls, settings: Settings) -> FetchClients:
        """The (cached) clients of ``settings``."""
        return cls(
            bigquery_client(settings),
            bigquery_read_client(settings),
            storage_client(settings),
            settings.project,
        )


@functools.cache
def bigquery_client(settings: Settings) -> bigquery.Client:
    """A BigQuery REST client (bound a request with :data:`BQ_CALL`)."""
    if settings.bigquery_emulator_host:
        return bigquery.Client(
            project=settings.project,
            location=settings.location,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=settings.bigquery_emulator_host),
        )
    return bigquery.Client(project=settings.project, location=settings.location)


@functools.cache
def bigquery_read_client(settings: Settings) -> BigQueryReadClient:
    """A BigQuery Storage Read API client (gRPC)."""
    if settings.bigquery_storage_emulator_host:
        channel = grpc.insecure_channel(settings.bigquery_storage_emulator_host, _GRPC_OPTIONS)
        return BigQueryReadClient(transport=BigQueryReadGrpcTransport(channel=channel))
    return BigQueryReadClient()


@functools.cache
def storage_client(settings: Settings) -> storage.Client:
    """A Cloud Storage client."""
    if settings.storage_emulator_host:
        return storage.Client(
            project=settings.project,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=settings.storage_emulator_host),
        )
    return storage.Client(project=settings.project)


@functools.cache
def publisher_client(settings: Settings) -> pubsub_v1.PublisherClient:
    """A Pub/Sub publisher (batches and retries publishes on its own); locally, on an insecure
    channel to the emulator, from the settings alone (the library's own switch reads
    ``PUBSUB_EMULATOR_HOST`` from the process environment)."""
    from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport

    if settings.pubsub_emulator_host:
        channel = grpc.insecure_channel(settings.pubsub_emulator_host, _GRPC_OPTIONS)
        return pubsub_v1.PublisherClient(transport=PublisherGrpcTransport(channel=channel))
    return pubsub_v1.PublisherClient()


@functools.cache
def subscriber_client(settings: Settings) -> pubsub_v1.SubscriberClient:
    """A Pub/Sub subscriber, also used to administer subscriptions."""
    from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

    if settings.pubsub_emulator_host:
        channel = grpc.insecure_channel(settings.pubsub_emulator_host, _GRPC_OPTIONS)
        return pubsub_v1.SubscriberClient(transport=SubscriberGrpcTransport(channel=channel))
    return pubsub_v1.SubscriberClient()


# A local stand-in that restarts is reachable again within seconds (gRPC's default reconnect
# backoff grows to 120 s).
_LOCAL_RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 5000),
]


def _grpc_client(client_class: Any, transport_class: Any, emulator_host: str | None) -> Any:
    """A gRPC API client: the cloud's default, or one on an insecure channel to a local stand-in."""
    if emulator_host:
        channel = grpc.insecure_channel(emulator_host, _LOCAL_RECONNECT)
        return client_class(transport=transport_class(channel=channel))
    return client_class()


@functools.cache
def jobs_client(settings: Settings) -> run_v2.JobsClient:
    """A Cloud Run Admin API v2 jobs client (gRPC); locally, the local runner of jobs."""
    from google.cloud import run_v2
    from google.cloud.run_v2.services.jobs.transports import JobsGrpcTransport

    client: run_v2.JobsClient = _grpc_client(
        run_v2.JobsClient, JobsGrpcTransport, settings.cloud_run_emulator_host
    )
    return client


@functools.cache
def executions_client(settings: Settings) -> run_v2.ExecutionsClient:
    """A Cloud Run Admin API v2 executions client (gRPC); locally, the local runner."""
    from google.cloud import run_v2
    from google.cloud.run_v2.services.executions.transports import ExecutionsGrpcTransport

    client: run_v2.ExecutionsClient = _grpc_client(
        run_v2.ExecutionsClient, ExecutionsGrpcTransport, settings.cloud_run_emulator_host
    )
    return client


@functools.cache
def secret_client(settings: Settings) -> Any:
    """A Secret Manager client (gRPC); locally, ``local/secret_manager.py``. Imported on use:
    only the jobs and the API read secrets."""
    from google.cloud import secretmanager
    from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
        SecretManagerServiceGrpcTransport,
    )

    return _grpc_client(
        secretmanager.SecretManagerServiceClient,
        SecretManagerServiceGrpcTransport,
        settings.secret_manager_emulator_host,
    )


def cloud_identity_service(settings: Settings, timeout_s: float = 20.0) -> Any:
    """The discovery client for Cloud Identity v1 (the Groups API has no gRPC client);
    locally, ``local/cloud_identity.py``, which speaks the same paths and JSON. Safe to use
    from several threads: httplib2 is not, so each thread's requests go over its own
    connection (the library's documented ``requestBuilder`` pattern)."""
    import threading

    import google.auth
    import google_auth_httplib2
    import httplib2
    from google.auth.credentials import AnonymousCredentials
    from googleapiclient.discovery import build
    from googleapiclient.http import HttpRequest

    host = settings.cloud_identity_emulator_host
    options: dict[str, Any] = {}
    if host:
        url = host if host.startswith("http") else f"http://{host}"
        credentials: Any = AnonymousCredentials()
        options = {"client_options": {"api_endpoint": url.rstrip("/") + "/"}, "num_retries": 0}
    else:
        credentials, _ = google.auth.default(
            scopes=["https://www.googleapis.com/auth/cloud-identity.groups.readonly"]
        )
    local = threading.local()

    def thread_http() -> Any:
        if not hasattr(local, "http"):
            local.http = google_auth_httplib2.AuthorizedHttp(
                credentials, http=httplib2.Http(timeout=timeout_s)
            )
        return local.http

    def request_builder(_http: Any, *args: Any, **kwargs: Any) -> HttpRequest:
        return HttpRequest(thread_http(), *args, **kwargs)

    return build(
        "cloudidentity",
        "v1",
        http=thread_http(),
        requestBuilder=request_builder,
        static_discovery=True,
        cache_discovery=False,
        **options,
    )
