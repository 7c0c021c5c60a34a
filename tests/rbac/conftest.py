"""Real Airflow 2.10.5 and 3.3.2 (own virtualenvs, installed once under .local/airflow) and the
local Cloud Identity server, for the reconciler's tests."""

from __future__ import annotations

import threading

import pytest
import requests

AIRFLOW_PORTS = {"2.10.5": 18280, "3.3.2": 18281}


@pytest.fixture(scope="session", params=list(AIRFLOW_PORTS), ids=lambda v: f"airflow-{v}")
def airflow(request, tmp_path_factory):
    from local.airflow import down, up

    af = up(request.param, AIRFLOW_PORTS[request.param], tmp_path_factory.mktemp(request.param))
    yield af
    down(af)


@pytest.fixture
def identity(monkeypatch):
    """A fresh local Cloud Identity server on a free port; the clients are pointed at it."""
    from werkzeug.serving import make_server

    from local.cloud_identity import create_app

    server = make_server("127.0.0.1", 0, create_app({}), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    monkeypatch.setenv("CLOUD_IDENTITY_EMULATOR_HOST", url)

    class Identity:
        def set_groups(self, groups: dict[str, list[str]]) -> None:
            requests.put(f"{url}/_admin/groups", json={"groups": groups}, timeout=5)

        def fail(
            self, group: str, mode: str = "500", count: int = 1000, page: int | None = None
        ) -> None:
            """The next ``count`` reads of ``group`` (only its ``page``-th memberships page,
            0-based, when given) answer ``mode``: 500, 429 or timeout."""
            requests.post(
                f"{url}/_admin/faults",
                json={"group": group, "mode": mode, "count": count, "page": page},
                timeout=5,
            )

        def heal(self) -> None:
            requests.delete(f"{url}/_admin/faults", timeout=5)

        def service(self):
            """The official client, pointed at this server."""
            from shared.clients import cloud_identity_service
            from shared.settings import Settings

            return cloud_identity_service(
                Settings(project="rbac-tests", cloud_identity_emulator_host=url)
            )

    yield Identity()
    server.shutdown()
