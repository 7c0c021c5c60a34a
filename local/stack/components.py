"""The stack's processes as :class:`Component` values: how each is started, on which ports,
and how to tell it is ready; missing prerequisites stop ``up`` with a line saying how to install."""

from __future__ import annotations

import json
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
    """The prediction API as Cloud Run serves it: gunicorn, threads serving while the model
    store polls in the background."""
    return [
        _venv_bin("gunicorn", "prediction API", extra="api"),
        "--bind",
        f"{HOST}:{port}",
        "--worker-class",
        "shared.api.server.JsonErrorsThreadWorker",
        "--workers",
        "2",
        "--threads",
        "32",
        "--log-level",
        "warning",
        # Its default control socket is shared by every gunicorn of the user (~/.gunicorn).
        "--no-control-socket",
        "shared.api.wsgi:app",
    ]


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
        env=lambda cfg: {**cfg.deployable_env("api"), "RETAIL_MODEL_POLL_S": "2"},
    ),
)


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


def function_component(entry_point: str) -> Component:
    """The functions-framework process serving one entry point of ``functions/main.py``."""
    return Component(
        f"function-{entry_point}",
        lambda cfg: [
            _venv_bin("functions-framework", "functions-framework"),
            "--target",
            entry_point,
            "--source",
            str(REPO / "functions" / "main.py"),
            "--signature-type",
            "cloudevent",
            "--host",
            HOST,
            "--port",
            str(cfg.function_port(entry_point)),
        ],
        lambda cfg: [cfg.function_port(entry_point)],
        lambda cfg: _port_open(cfg.function_port(entry_point)),
        # Deployed, each message gets its own instance (concurrency 1, up to max instances);
        # here one process stands in for them, with threads enough for a 16- or 32-way fan-out
        # (functions-framework's gunicorn defaults to 4 per core, 8 on this machine).
        env=lambda cfg: {**cfg.deployable_env(entry_point), "THREADS": "32"},
        timeout_s=30.0,
    )


def push_routes(cfg: StackConfig) -> list[dict[str, Any]]:
    """Each push subscription of the environment: its function's push URL, as many
    deliveries at once as the function has instances (one request each), its ack deadline."""
    from google.cloud import pubsub_v1

    from shared import topology
    from shared.platform import declaration, environment

    functions = declaration()["deployables"]
    routes = []
    for sub in topology.SUBSCRIPTIONS:
        topic = cfg.names.topic(sub.topic)
        instances = functions[sub.entry_point]["max_instances"]
        if instances == "fetch_instances":
            instances = environment(cfg.environment)["fetch_limits"]["max_instances"]
        routes.append(
            {
                "subscription": pubsub_v1.SubscriberClient.subscription_path(
                    cfg.project, cfg.names.subscription(sub.name)
                ),
                "endpoint": f"http://{HOST}:{cfg.function_port(sub.entry_point)}"
                + topology.push_path(cfg.project, topic),
                "concurrency": int(instances),
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
    ],
    lambda cfg: [cfg.push_relay_port],
    lambda cfg: _http_ok(f"http://{HOST}:{cfg.push_relay_port}/healthz"),
    env=lambda cfg: {
        "PYTHONPATH": str(REPO),
        "PUBSUB_EMULATOR_HOST": f"{HOST}:{cfg.pubsub_port}",
    },
)


def components() -> list[Component]:
    from shared.topology import entry_points

    return [*EMULATORS, *(function_component(ep) for ep in entry_points()), PUSH_RELAY]
