"""The stack's processes as :class:`Component` values: how each is started, on which ports,
and how to tell it is ready; missing prerequisites stop ``up`` with a line saying how to install."""

from __future__ import annotations

import json
import secrets
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local.stack.config import HOST, REPO, StackConfig
from local.stack.emulators import _bq_argv, _gcs_argv, _pubsub_argv, _venv_bin


@dataclass(frozen=True)
class Component:
    """A long-lived process of the stack and how to tell it is ready."""

    name: str
    argv: Callable[[StackConfig], list[str]]
    ports: Callable[[StackConfig], list[int]]
    ready: Callable[[StackConfig], bool]
    env: Callable[[StackConfig], dict[str, str]] = lambda cfg: {}
    timeout_s: float = 60.0


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return 200 <= resp.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def api_argv(port: int) -> list[str]:
    """The prediction API as the container runs it: the front that absorbs slow clients on
    ``port``, gunicorn (threads serving while the model store polls) behind it."""
    _venv_bin("gunicorn", "prediction API", extra="api")  # installed, or a clear error
    return [sys.executable, "-m", "shared.api.serve", "--host", HOST, "--port", str(port)]


EMULATORS: tuple[Component, ...] = (
    Component(
        "gcs",
        _gcs_argv,
        lambda cfg: [cfg.gcs_port],
        lambda cfg: _http_ok(f"http://{HOST}:{cfg.gcs_port}/storage/v1/b"),
    ),
    Component(
        "pubsub",
        _pubsub_argv,
        lambda cfg: [cfg.pubsub_port],
        lambda cfg: _http_ok(f"http://{HOST}:{cfg.pubsub_port}/"),
    ),
    Component(
        "bigquery",
        _bq_argv,
        lambda cfg: [cfg.bq_rest_port, cfg.bq_grpc_port],
        lambda cfg: (
            _port_open(cfg.bq_grpc_port)
            and _http_ok(
                f"http://{HOST}:{cfg.bq_rest_port}/bigquery/v2/projects/{cfg.project}/datasets"
            )
        ),
        env=lambda cfg: {"BQEMU_GCS_LOCAL_ROOT": str(cfg.gcs_root), "PYTHONPATH": str(REPO)},
    ),
    Component(
        "bigquery-read",
        lambda cfg: [
            sys.executable,
            "-m",
            "local.storage_proxy",
            "--listen",
            f"{HOST}:{cfg.bq_read_port}",
            "--upstream",
            f"{HOST}:{cfg.bq_grpc_port}",
            "--control",
            str(cfg.read_proxy_control),
        ],
        lambda cfg: [cfg.bq_read_port],
        lambda cfg: _port_open(cfg.bq_read_port),
        env=lambda cfg: {"PYTHONPATH": str(REPO)},
    ),
    Component(
        "cloud-identity",
        lambda cfg: [
            sys.executable,
            "-m",
            "local.cloud_identity",
            "--port",
            str(cfg.identity_port),
            "--seed",
            str(REPO / "local" / "rbac" / "groups.yaml"),
        ],
        lambda cfg: [cfg.identity_port],
        lambda cfg: _http_ok(f"http://{HOST}:{cfg.identity_port}/healthz"),
        env=lambda cfg: {"PYTHONPATH": str(REPO)},
    ),
    Component(
        "secret-manager",
        lambda cfg: [
            sys.executable,
            "-m",
            "local.secret_manager",
            "--port",
            str(cfg.secrets_port),
            "--state",
            str(cfg.state_dir / "secrets"),
        ],
        lambda cfg: [cfg.secrets_port],
        lambda cfg: _port_open(cfg.secrets_port),
        env=lambda cfg: {"PYTHONPATH": str(REPO)},
    ),
    Component(
        "cloud-run",
        lambda cfg: [
            sys.executable,
            "-m",
            "local.cloud_run",
            "--port",
            str(cfg.cloud_run_port),
            "--state",
            str(cfg.state_dir / "cloud-run"),
            "--jobs",
            str(_write_jobs(cfg)),
        ],
        lambda cfg: [cfg.cloud_run_port],
        lambda cfg: _port_open(cfg.cloud_run_port),
        env=lambda cfg: {"PYTHONPATH": str(REPO)},
    ),
    Component(
        "api",
        lambda cfg: api_argv(cfg.api_port),
        lambda cfg: [cfg.api_port],
        lambda cfg: _http_ok(f"http://{HOST}:{cfg.api_port}/healthz"),
        # Locally a new model is served within seconds of its training run.
        env=lambda cfg: {**cfg.deployable_env("api"), "RETAIL_MODEL_POLL_S": "2", **DESK_ENV},
    ),
)


# The desk on the local stack: people and groups of local/rbac/groups.yaml, the development
# sign-in (refused anywhere but here), a session key of this process's making.
DESK_ENV = {
    "RETAIL_DESK_ACCESS": str(REPO / "local" / "rbac" / "desk.yaml"),
    "RETAIL_DESK_DEV_SIGN_IN": "1",
    "RETAIL_DESK_SESSION_SECRET": secrets.token_hex(32),
}


def _write_jobs(cfg: StackConfig) -> Path:
    """The training jobs as Terraform declares them in this environment (name, task shape,
    environment), for the local Cloud Run runner."""
    from shared.platform import declaration, deployables, environment

    shapes = environment(cfg.environment)["training"]
    jobs = {
        cfg.names.job(job): {
            "module": declaration()["deployables"][job]["module"],
            **{
                k: shapes[job][k] for k in ("task_count", "parallelism", "max_retries", "timeout_s")
            },
            "env": cfg.deployable_env(job),
        }
        for job in deployables("job")
    }
    path = cfg.state_dir / "cloud-run" / "jobs.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(jobs, indent=1))
    return path


def capacity(cfg: StackConfig, entry_point: str) -> int:
    """Requests a function serves at once in the environment: max instances x concurrency."""
    from shared.platform import function_shape

    if entry_point in dict(cfg.capacities):
        return dict(cfg.capacities)[entry_point]
    instances, concurrency = function_shape(entry_point, cfg.environment)
    return instances * concurrency


def push_window(cfg: StackConfig, entry_point: str) -> int:
    """Deliveries the relay keeps in flight to a function, as Pub/Sub's push does not wait for
    a free instance: more than the function serves, so a backlog meets 429s."""
    return 2 * capacity(cfg, entry_point) + 4


def function_component(entry_point: str) -> Component:
    """One process standing in for all instances of an entry point of ``functions/main.py``:
    it serves the declared max instances x concurrency and answers 429 beyond that
    (``local/function_host.py``)."""
    return Component(
        f"function-{entry_point}",
        lambda cfg: [
            sys.executable,
            "-m",
            "local.function_host",
            "--target",
            entry_point,
            "--source",
            str(REPO / "functions" / "main.py"),
            "--host",
            HOST,
            "--port",
            str(cfg.function_port(entry_point)),
            "--capacity",
            str(capacity(cfg, entry_point)),
            "--threads",
            str(push_window(cfg, entry_point) + 4),
        ],
        lambda cfg: [cfg.function_port(entry_point)],
        lambda cfg: _port_open(cfg.function_port(entry_point)),
        env=lambda cfg: cfg.deployable_env(entry_point),
        timeout_s=30.0,
    )


def push_routes(cfg: StackConfig) -> list[dict[str, Any]]:
    """Each push subscription of the environment: its function's push URL, the deliveries the
    relay keeps in flight (the push window, more than the function serves), its ack
    deadline."""
    from google.cloud import pubsub_v1

    from shared import topology

    routes = []
    for sub in topology.SUBSCRIPTIONS:
        topic = cfg.names.topic(sub.topic)
        routes.append(
            {
                "subscription": pubsub_v1.SubscriberClient.subscription_path(
                    cfg.project, cfg.names.subscription(sub.name)
                ),
                "endpoint": f"http://{HOST}:{cfg.function_port(sub.entry_point)}"
                + topology.push_path(cfg.project, topic),
                "concurrency": push_window(cfg, sub.entry_point),
                "ack_deadline_s": cfg.ack_deadline_s(sub),
            }
        )
    return routes


def _write_routes(cfg: StackConfig) -> Path:
    path = cfg.state_dir / "push-routes.json"
    path.write_text(json.dumps(push_routes(cfg), indent=1))
    return path


PUSH_RELAY = Component(
    "push-relay",
    lambda cfg: [
        sys.executable,
        "-m",
        "local.push_relay",
        "--routes",
        str(_write_routes(cfg)),
        "--port",
        str(cfg.push_relay_port),
        "--pubsub",
        f"{HOST}:{cfg.pubsub_port}",
    ],
    lambda cfg: [cfg.push_relay_port],
    lambda cfg: _http_ok(f"http://{HOST}:{cfg.push_relay_port}/healthz"),
    env=lambda cfg: {"PYTHONPATH": str(REPO)},
)


def components() -> list[Component]:
    from shared.topology import entry_points

    return [*EMULATORS, *(function_component(ep) for ep in entry_points()), PUSH_RELAY]
