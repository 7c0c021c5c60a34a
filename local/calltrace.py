"""Record which Google API calls a deployable really makes (local stack only).

Installed in each deployable process by ``local/deployable_hook/sitecustomize.py`` when the stack
starts it with ``RETAIL_CALL_TRACE_DIR`` set; a deployment never loads this module. Every
HTTP request through ``requests`` and every gRPC call on a channel made by ``grpc`` is noted,
once per distinct (call, resource), in ``<dir>/<deployable>-<pid>.jsonl``. The deployable is
named by the variables the platform sets in the cloud: ``FUNCTION_TARGET`` (a function's entry
point), ``CLOUD_RUN_JOB`` (a job) or ``K_SERVICE`` (the API). ``local/iam_contract.py`` maps the
calls to the permissions they need and compares them with the grants in ``platform.yaml``.

Only the method, the URL path and the resource fields are kept: never headers, bodies, tokens
or row data (a query job keeps its SQL text, which names the tables it reads and writes).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from shared.settings import deployable_name

_LOCK = threading.Lock()
_SEEN: set[str] = set()
_INSTALLED = False

# gRPC request fields that name the resource a call acts on.
_GRPC_RESOURCE_FIELDS = ("topic", "subscription", "name", "read_stream", "parent", "table")


def _write(record: dict[str, Any]) -> None:
    directory = os.environ.get("RETAIL_CALL_TRACE_DIR")
    if not directory:
        return
    key = json.dumps(record, sort_keys=True)
    with _LOCK:
        if key in _SEEN:
            return
        _SEEN.add(key)
        path = Path(directory) / f"{deployable_name()}-{os.getpid()}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(key + "\n")


def _http_record(method: str, url: str, body: Any) -> dict[str, Any]:
    parts = urlsplit(url)
    record: dict[str, Any] = {"kind": "http", "verb": method.upper(), "path": parts.path}
    if "/bigquery/v2/" in parts.path and method.upper() == "POST" and parts.path.endswith("/jobs"):
        # A job's kind and the tables it touches decide the permissions it needs.
        try:
            config = json.loads(body).get("configuration", {}) if body else {}
        except (TypeError, ValueError):
            config = {}
        for kind in ("query", "load", "extract", "copy"):
            if kind in config:
                record["job"] = kind
                if kind == "query":
                    record["sql"] = str(config[kind].get("query", ""))[:4000]
                dest = config[kind].get("destinationTable")
                if dest:
                    record["destination"] = f"{dest.get('projectId')}.{dest.get('datasetId')}"
    if "/bigquery/v2/" in parts.path and parts.path.endswith("/queries") and body:
        with contextlib.suppress(TypeError, ValueError):
            record["sql"] = str(json.loads(body).get("query", ""))[:4000]
    return record


def _resource_of(request: Any) -> str:
    session = getattr(request, "read_session", None)  # CreateReadSession reads this table
    table = getattr(session, "table", None) if session is not None else None
    if isinstance(table, str) and table:
        return table
    for name in _GRPC_RESOURCE_FIELDS:
        value = getattr(request, name, None)
        if isinstance(value, str) and value:
            return value
    return ""


def intercept_channels(interceptor: Any, targets: Callable[[str], bool] = lambda _t: True) -> None:
    """Put ``interceptor`` on every gRPC channel this process makes from now on to a target
    ``targets`` accepts (the channel factories are wrapped; call once per interceptor)."""
    import grpc

    for factory in ("insecure_channel", "secure_channel"):
        original = getattr(grpc, factory)

        def make(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            channel = _original(*args, **kwargs)
            target = str(args[0] if args else kwargs.get("target", ""))
            return grpc.intercept_channel(channel, interceptor) if targets(target) else channel

        setattr(grpc, factory, make)


def install() -> None:
    """Hook ``requests`` and ``grpc`` channel creation in this process (idempotent)."""
    global _INSTALLED
    if _INSTALLED or not os.environ.get("RETAIL_CALL_TRACE_DIR"):
        return
    _INSTALLED = True
    import grpc
    import requests

    original_request = requests.Session.request

    def request(self: requests.Session, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        body = kwargs.get("data") if kwargs.get("data") is not None else kwargs.get("json")
        if isinstance(body, dict):
            body = json.dumps(body)
        with contextlib.suppress(Exception):  # recording must never break the call it watches
            _write(_http_record(method, str(url), body))
        return original_request(self, method, url, *args, **kwargs)

    requests.Session.request = request  # type: ignore[method-assign,assignment]

    class _Recorder(
        grpc.UnaryUnaryClientInterceptor,
        grpc.UnaryStreamClientInterceptor,
        grpc.StreamUnaryClientInterceptor,
        grpc.StreamStreamClientInterceptor,
    ):
        def _note(self, details: Any, request: Any) -> None:
            with contextlib.suppress(Exception):
                _write(
                    {"kind": "grpc", "method": details.method, "resource": _resource_of(request)}
                )

        def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
            self._note(details, request)
            return continuation(details, request)

        def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
            self._note(details, request)
            return continuation(details, request)

        def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
            self._note(details, None)
            return continuation(details, requests)

        def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
            self._note(details, None)
            return continuation(details, requests)

    intercept_channels(_Recorder())
