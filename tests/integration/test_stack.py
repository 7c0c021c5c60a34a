"""The stack's promises: idempotent up, down leaves nothing behind, clear errors."""

import os
import socket
import subprocess
import sys

import pytest

from local.stack import StackConfig, components, down, running_pgid, status, up

from ..conftest import REPO

pytestmark = pytest.mark.stack


def port_open(port):
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def own_stack(tmp_path):
    """A second stack on its own ports and state, so the session's stack is not disturbed."""
    cfg = StackConfig.from_env(
        {
            "RETAIL_STACK_DIR": str(tmp_path / "stack"),
            "RETAIL_PUBSUB_PORT": "28085",
            "RETAIL_BQ_REST_PORT": "29050",
            "RETAIL_BQ_GRPC_PORT": "29060",
            "RETAIL_BQ_READ_PORT": "29061",
            "RETAIL_GCS_PORT": "24443",
            "RETAIL_FUNCTIONS_BASE_PORT": "28101",
            "RETAIL_CLOUD_IDENTITY_PORT": "28095",
            "RETAIL_CLOUD_RUN_PORT": "28096",
            "RETAIL_API_PORT": "28097",
        }
    )
    yield cfg
    down(cfg, say=lambda _m: None)


def test_up_twice_then_down_leaves_nothing(own_stack):
    cfg = own_stack
    up(cfg, say=lambda _m: None)
    first = {c.name: running_pgid(cfg, c) for c in components()}
    assert all(first.values())
    said = []
    up(cfg, say=said.append)
    assert {c.name: running_pgid(cfg, c) for c in components()} == first
    assert sum("already running" in line for line in said) == len(first)
    assert {state for _name, state, _detail in status(cfg)} == {"up"}
    assert (cfg.log_dir / "pubsub.log").exists()

    down(cfg, say=lambda _m: None)
    assert not any(group_alive(pgid) for pgid in first.values())
    ports = [p for c in components() for p in c.ports(cfg)]
    assert not any(port_open(p) for p in ports)
    assert {state for _name, state, _detail in status(cfg)} == {"down"}


def test_missing_pubsub_emulator_is_named_and_nothing_starts(tmp_path):
    env = {
        **os.environ,
        "RETAIL_GCLOUD_SDK_ROOT": str(tmp_path / "no-sdk"),
        "RETAIL_STACK_DIR": str(tmp_path / "stack"),
        "RETAIL_PUBSUB_PORT": "38085",
        "RETAIL_BQ_REST_PORT": "39050",
        "RETAIL_BQ_GRPC_PORT": "39060",
        "RETAIL_BQ_READ_PORT": "39061",
        "RETAIL_GCS_PORT": "34443",
        "RETAIL_FUNCTIONS_BASE_PORT": "38101",
        "RETAIL_CLOUD_IDENTITY_PORT": "38095",
        "RETAIL_CLOUD_RUN_PORT": "38096",
        "RETAIL_API_PORT": "38097",
    }
    result = subprocess.run(
        [sys.executable, "-m", "local", "up"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: Pub/Sub emulator not found")
    assert "gcloud components install pubsub-emulator" in line
    assert not port_open(34443), "the GCS emulator was started although the stack could not be"


def test_busy_port_is_reported_and_nothing_is_left_running(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        env = {
            **os.environ,
            "RETAIL_STACK_DIR": str(tmp_path / "stack"),
            "RETAIL_GCS_PORT": "44443",
            "RETAIL_PUBSUB_PORT": "48085",
            "RETAIL_BQ_REST_PORT": str(port),
            "RETAIL_BQ_GRPC_PORT": "49060",
            "RETAIL_BQ_READ_PORT": "49061",
            "RETAIL_CLOUD_IDENTITY_PORT": "48095",
            "RETAIL_CLOUD_RUN_PORT": "48096",
            "RETAIL_API_PORT": "48097",
        }
        result = subprocess.run(
            [sys.executable, "-m", "local", "up"],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert f"bigquery: port {port} is held by pid" in result.stderr  # names the holder
    assert not port_open(44443) and not port_open(48085)  # GCS and Pub/Sub were stopped again
