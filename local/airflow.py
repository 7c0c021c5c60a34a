"""A real Airflow for the RBAC reconciler, in its own virtualenv, on SQLite (LOCAL_STACK.md).

    python -m local.airflow up --version 2.10.5 --port 8280     # installs once (~1 min)
    python -m local.airflow down --version 2.10.5

Airflow 2.10 serves ``/api/v1`` from ``airflow webserver``; Airflow 3 serves ``/api/v2`` and
the FAB auth manager's ``/auth/fab/v1`` from ``airflow api-server``. The DAGs folder holds a few
DAGs of two projects (``pricing_*``, ``promo_*``, and one tagged ``pricing``). The admin
password is generated at first start and kept in ``<home>/admin-password`` (never printed).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ROOT = REPO / ".local" / "airflow"  # the virtualenvs (installed once) and default homes
PACKAGES = {
    "2.10.5": ["apache-airflow==2.10.5"],
    "3.3.2": ["apache-airflow==3.3.2", "apache-airflow-providers-fab==3.10.2"],
}
DAGS = {
    "pricing_daily": ["pricing"],
    "pricing_weekly": ["pricing"],
    "promo_uplift": ["promotions"],
    "promo_calendar": ["promotions"],
    "shared_cleanup": ["platform"],
    "elasticity_report": ["pricing"],
}
DAG_FILE = '''"""DAGs of the local Airflow (written by local/airflow.py)."""
import datetime

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

for dag_id, tags in {dags!r}.items():
    globals()[dag_id] = DAG(
        dag_id=dag_id, tags=tags, schedule=None, start_date=datetime.datetime(2026, 1, 1)
    )
'''


class AirflowSetupError(RuntimeError):
    """Airflow could not be installed or started; the message says which step."""


@dataclass(frozen=True)
class Airflow:
    version: str
    port: int
    home: Path
    workers: int = 1  # the webserver's (api-server's on 3) worker processes

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    @property
    def admin_password(self) -> str:
        return (self.home / "admin-password").read_text().strip()


def venv(version: str) -> Path:
    return ROOT / f"venv-{version}"


def install(version: str, say: Callable[[str], object] = print) -> Path:
    """The virtualenv with Airflow ``version``, created once and reused."""
    if version not in PACKAGES:
        raise AirflowSetupError(f"unsupported Airflow version {version}; one of {list(PACKAGES)}")
    path = venv(version)
    marker = path / ".installed"
    if marker.exists():
        return path
    say(f"installing Airflow {version} into {path} (once, about a minute)")
    shutil.rmtree(path, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    out = subprocess.run(
        [
            str(path / "bin" / "pip"),
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *PACKAGES[version],
        ],
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise AirflowSetupError(f"pip install of Airflow {version} failed: {out.stderr[-800:]}")
    marker.touch()
    return path


def _env(af: Airflow) -> dict[str, str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        "AIRFLOW_HOME": str(af.home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(af.home / "dags"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{af.home / 'airflow.db'}",
        "AIRFLOW__WEBSERVER__WORKERS": str(af.workers),
        "AIRFLOW__WEBSERVER__SECRET_KEY": (af.home / "secret").read_text().strip(),
        "AIRFLOW__API__WORKERS": str(af.workers),
        "AIRFLOW__CORE__FERNET_KEY": "",
        "PYTHONWARNINGS": "ignore",
    }
    if af.major == 2:
        env["AIRFLOW__API__AUTH_BACKENDS"] = (
            "airflow.providers.fab.auth_manager.api.auth.backend.basic_auth,"
            "airflow.api.auth.backend.session"
        )
    else:
        env["AIRFLOW__CORE__AUTH_MANAGER"] = (
            "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
        )
        env["AIRFLOW__API_AUTH__JWT_SECRET"] = (af.home / "secret").read_text().strip()
        # The FAB auth manager caches a signed-in user (roles included) for [fab] cache_ttl
        # seconds (30 by default): a revocation bites after that. Locally, at once.
        env["AIRFLOW__FAB__CACHE_TTL"] = "0"
    return env


def _airflow(af: Airflow, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run(
        [str(venv(af.version) / "bin" / "airflow"), *args],
        env=_env(af),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and out.returncode:
        raise AirflowSetupError(f"airflow {args[0]} failed: {out.stderr[-800:]}")
    return out


def _healthy(af: Airflow) -> bool:
    path = "/api/v2/monitor/health" if af.major == 3 else "/health"
    try:
        with urllib.request.urlopen(af.url + path, timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def up(
    version: str,
    port: int,
    home: Path | None = None,
    say: Callable[[str], object] = print,
    dags: dict[str, list[str]] | None = None,
    workers: int = 1,
) -> Airflow:
    """Install (once), initialise (once) and start Airflow; returns when its API answers.
    ``workers``: the web server's processes (1 here; Airflow's default is 4)."""
    install(version, say)
    af = Airflow(version, port, (home or ROOT / f"home-{version}").resolve(), workers)
    if _healthy(af):
        if _ours_running(af):
            return af
        from local.stack import port_holder

        raise RuntimeError(
            f"port {port} is held by another Airflow ({port_holder(port)}), not the one in "
            f"{af.home}; stop it or choose another port (--airflow-port)"
        )
    (af.home / "dags").mkdir(parents=True, exist_ok=True)
    if not (af.home / "secret").exists():
        (af.home / "secret").write_text(secrets.token_hex(24))
        (af.home / "admin-password").write_text(secrets.token_urlsafe(16))
    (af.home / "dags" / "retail_dags.py").write_text(DAG_FILE.format(dags=dags or DAGS))
    if not (af.home / ".initialised").exists():
        _airflow(af, "db", "migrate")
        _airflow(
            af,
            "users",
            "create",
            "-u",
            "admin",
            f"--password={af.admin_password}",  # it may begin with "-"
            "-r",
            "Admin",
            "-e",
            "admin@example.com",
            "-f",
            "Local",
            "-l",
            "Admin",
        )
        (af.home / ".initialised").touch()
    _airflow(af, "dags", "reserialize")
    if af.major == 2:
        _airflow(af, "sync-perm", "--include-dags", check=False)
    server = ["webserver", "-H", "127.0.0.1", "-p", str(port)]
    if af.major == 3:
        server = ["api-server", "-H", "127.0.0.1", "-p", str(port)]
    log = open(af.home / "server.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [str(venv(version) / "bin" / "airflow"), *server],
        env=_env(af),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    (af.home / "server.pid").write_text(str(proc.pid))
    deadline = time.monotonic() + 120
    while not _healthy(af):
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = (af.home / "server.log").read_text(errors="replace")[-1500:]
            down(af)
            raise AirflowSetupError(f"Airflow {version} did not start:\n{tail}")
        time.sleep(0.5)
    if af.major == 3:
        _airflow(af, "sync-perm", "--include-dags", check=False)
    return af


def _ours_running(af: Airflow) -> bool:
    """The server this home started is alive (its pid file names a live process group)."""
    try:
        os.killpg(int((af.home / "server.pid").read_text()), 0)
    except (OSError, ValueError):
        return False
    return (af.home / "admin-password").exists()


def down(af: Airflow) -> None:
    pid_file = af.home / "server.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    try:
        os.killpg(pid, signal.SIGTERM)
        for _ in range(50):
            os.killpg(pid, 0)
            time.sleep(0.1)
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    pid_file.unlink(missing_ok=True)


def visible_dags(af: Airflow, email: str) -> set[str]:
    """The DAGs the user ``email`` can open through Airflow's API, logged in as that user
    (``email`` is a username, or the email of exactly one account, case-insensitively).

    Gives the user a fresh random password first (as the admin; the password is never shown):
    the reconciler creates users without one, since Composer signs people in with Google.
    """
    from urllib.parse import quote

    import requests

    from shared.rbac.airflow import AirflowClient, sign_in_on_form

    admin = AirflowClient(af.url, username="admin", password=af.admin_password)
    # As Airflow stores them (the reconciler's own reading of users is what is under test).
    users = list(admin._pages(f"{admin.fab}/users", "users", "list_users"))
    found = [u for u in users if u["username"] == email] or [
        u for u in users if (u.get("email") or "").lower() == email.lower()
    ]
    if len(found) != 1:
        raise AirflowSetupError(f"{len(found)} accounts match {email!r}; name one by username")
    user = found[0]
    password = secrets.token_urlsafe(12)
    admin._call(
        "PATCH",
        f"{admin.fab}/users/{quote(user['username'], safe='')}",
        "set_password",
        params={"update_mask": "password"},
        json={**{k: user[k] for k in ("username", "email", "first_name", "last_name")},
              "roles": user["roles"], "password": password},
    )  # fmt: skip
    username = user["username"]
    session = requests.Session()
    if af.major == 3:
        token = session.post(
            f"{af.url}/auth/token",
            json={"username": username, "password": password},
            timeout=10,
        ).json()["access_token"]
        session.headers["Authorization"] = f"Bearer {token}"
        api = f"{af.url}/api/v2"
    elif ":" in username:  # basic auth cannot carry it: sign in on the web form
        if not sign_in_on_form(session, af.url, username, password, 10):
            raise AirflowSetupError("Airflow's sign-in form has no csrf_token")
        api = f"{af.url}/api/v1"
    else:
        session.auth = (username, password)
        api = f"{af.url}/api/v1"
    visible = set()
    for dag in admin.dags():
        status = session.get(f"{api}/dags/{dag}", timeout=10).status_code
        if status not in (200, 403, 404):
            raise AirflowSetupError(f"Airflow answered {status} for DAG {dag} as {email}")
        if status == 200:
            visible.add(dag)
    return visible


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["install", "up", "down"])
    parser.add_argument("--version", default="2.10.5", choices=list(PACKAGES))
    parser.add_argument("--port", type=int, default=8280)
    args = parser.parse_args(argv)
    try:
        if args.command == "install":
            install(args.version)
        elif args.command == "up":
            af = up(args.version, args.port)
            print(
                f"Airflow {args.version} at {af.url} (admin password in {af.home}/admin-password)"
            )
        else:
            down(Airflow(args.version, args.port, (ROOT / f"home-{args.version}").resolve()))
    except AirflowSetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
