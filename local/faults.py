"""Faults the cloud has and the emulators lack, injected into a deployable process.

``RETAIL_FAULT_IAM_DENY_S=N`` (the stack sets it for the deployables it is asked to:
``RETAIL_FAULT_IAM_DENY=plan_fetch=60`` or, for one API, ``fetch_chunk:bigquerystorage=60``):
every Google API call the process makes in its first N seconds (to that API only when
``RETAIL_FAULT_IAM_DENY_API`` names one) is refused with **403 PERMISSION_DENIED**, what a
service account's calls get while a grant Terraform just applied is still propagating (Google
documents up to about seven minutes). HTTP calls (Cloud Storage, BigQuery) get a 403 response
in the API's JSON error shape; gRPC calls (Pub/Sub, the Storage Read API, Cloud Run, Secret
Manager) a ``PERMISSION_DENIED`` status, so the official clients raise ``Forbidden`` /
``PermissionDenied`` exactly as in the cloud. Calls to anything else (Airflow) pass.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any
from urllib.parse import urlsplit

from local.calltrace import intercept_channels

_STARTED = time.monotonic()
# The APIs a fault can name, and the variable holding each one's local endpoint.
APIS = {
    "storage": "STORAGE_EMULATOR_HOST",
    "bigquery": "BIGQUERY_EMULATOR_HOST",
    "pubsub": "PUBSUB_EMULATOR_HOST",
    "bigquerystorage": "BIGQUERY_STORAGE_EMULATOR_HOST",
    "run": "CLOUD_RUN_EMULATOR_HOST",
    "secretmanager": "SECRET_MANAGER_EMULATOR_HOST",
    "cloudidentity": "CLOUD_IDENTITY_EMULATOR_HOST",
}
_INSTALLED = False


def _denying(window_s: float) -> bool:
    return time.monotonic() - _STARTED < window_s


def _google_hosts(api: str) -> set[str]:
    hosts = set()
    for name, var in APIS.items():
        value = os.environ.get(var, "") if api in ("", name) else ""
        if value:
            hosts.add(urlsplit(value if "://" in value else f"//{value}").netloc)
    return hosts


def install() -> None:
    """Install the faults the environment asks for (idempotent; nothing when none)."""
    global _INSTALLED
    window = float(os.environ.get("RETAIL_FAULT_IAM_DENY_S") or 0)
    if _INSTALLED or window <= 0:
        return
    _INSTALLED = True
    import grpc
    import requests

    api = os.environ.get("RETAIL_FAULT_IAM_DENY_API", "")
    hosts = _google_hosts(api)
    message = "Permission denied (injected: IAM propagating after an apply)"
    original_request = requests.Session.request

    def request(self: requests.Session, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        where = urlsplit(str(url)).netloc
        google = where in hosts or (not api and where.endswith("googleapis.com"))
        if _denying(window) and google:
            denied = requests.Response()
            denied.status_code = 403
            denied.url = str(url)
            denied.request = requests.Request(method, url).prepare()
            denied.headers["Content-Type"] = "application/json"
            body = {"error": {"code": 403, "message": message, "status": "PERMISSION_DENIED"}}
            denied._content = json.dumps(body).encode()
            return denied
        return original_request(self, method, url, *args, **kwargs)

    requests.Session.request = request  # type: ignore[method-assign,assignment]

    class Denied(grpc.RpcError):
        def code(self) -> grpc.StatusCode:
            return grpc.StatusCode.PERMISSION_DENIED

        def details(self) -> str:
            return message

        def trailing_metadata(self) -> tuple:
            return ()

    class Deny(
        grpc.UnaryUnaryClientInterceptor,
        grpc.UnaryStreamClientInterceptor,
        grpc.StreamUnaryClientInterceptor,
        grpc.StreamStreamClientInterceptor,
    ):
        def _call(self, continuation: Any, details: Any, request: Any) -> Any:
            if _denying(window):
                raise Denied()
            return continuation(details, request)

        intercept_unary_unary = _call
        intercept_unary_stream = _call
        intercept_stream_unary = _call
        intercept_stream_stream = _call

    intercept_channels(Deny(), lambda target: not api or target in hosts)
