"""The platform's configuration: one frozen, validated object read from the environment.

The same code runs in the cloud and on the local emulator stack; only the endpoints differ, and
an endpoint is local exactly when its ``*_EMULATOR_HOST`` variable is set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


class SettingsError(ValueError):
    """The environment does not describe a usable configuration; names the variable."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {value}")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything a function, job or CLI needs to know about where it runs."""

    project: str
    location: str = "US"
    data_bucket: str = ""
    temp_dataset: str = "fetch_tmp"
    pubsub_emulator_host: str | None = None
    storage_emulator_host: str | None = None
    bigquery_emulator_host: str | None = None
    bigquery_storage_emulator_host: str | None = None
    cloud_run_emulator_host: str | None = None
    secret_manager_emulator_host: str | None = None
    region: str = "europe-west1"
    prefix: str = ""
    # Fetch limits: streams per read session and the work budget of one function invocation
    # (Cloud Functions stop event-driven functions at 540 s; keep a margin to hand work on).
    max_streams: int = 16
    time_budget_s: int = 480
    part_max_rows: int = 1_000_000
    # Parts are cut at a fixed row count per run, chosen so a part is about this much Arrow
    # data: a worker's memory is bounded by one part whatever the table's width or size.
    part_target_mb: int = 32
    # Where trained models, their pointers and scores live (a versioned bucket in the cloud).
    artifacts: str = ""
    # How long a claimed side effect (shared/claims.py) may go without a recorded result
    # before another delivery checks the real state and takes over.
    claim_lease_s: int = 30
    # Where fetches may write: gs://bucket/prefix entries; a destination must lie below one.
    fetch_destinations: tuple[str, ...] = ()
    # The deployment environment (shared/platform.yaml) and its results dataset.
    environment: str = ""
    results_dataset: str = "results"

    def topic(self, base: str) -> str:
        """The deployed name of a topic of ``shared.topology``: the environment's prefix + base."""
        return f"{self.prefix}{base}"

    @property
    def local(self) -> bool:
        """True when every Google endpoint is an emulator."""
        return all(
            (
                self.pubsub_emulator_host,
                self.storage_emulator_host,
                self.bigquery_emulator_host,
                self.bigquery_storage_emulator_host,
            )
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and validate the settings; raises :class:`SettingsError` naming the variable."""
        env = os.environ if env is None else env
        project = env.get("GOOGLE_CLOUD_PROJECT") or env.get("GCP_PROJECT") or ""
        if not project:
            raise SettingsError("GOOGLE_CLOUD_PROJECT is not set")
        location = env.get("BIGQUERY_LOCATION", "US")
        prefix = env.get("RETAIL_PREFIX") or ""
        data_bucket = env.get("RETAIL_DATA_BUCKET") or f"{project}-{prefix}data"
        return cls(
            project=project,
            location=location,
            data_bucket=data_bucket,
            temp_dataset=env.get("RETAIL_TEMP_DATASET") or f"{prefix.replace('-', '_')}fetch_tmp",
            pubsub_emulator_host=env.get("PUBSUB_EMULATOR_HOST") or None,
            storage_emulator_host=env.get("STORAGE_EMULATOR_HOST") or None,
            bigquery_emulator_host=env.get("BIGQUERY_EMULATOR_HOST") or None,
            bigquery_storage_emulator_host=env.get("BIGQUERY_STORAGE_EMULATOR_HOST") or None,
            cloud_run_emulator_host=env.get("CLOUD_RUN_EMULATOR_HOST") or None,
            secret_manager_emulator_host=env.get("SECRET_MANAGER_EMULATOR_HOST") or None,
            region=env.get("RETAIL_REGION") or "europe-west1",
            prefix=prefix,
            max_streams=_int(env, "RETAIL_MAX_STREAMS", 16),
            time_budget_s=_int(env, "RETAIL_TIME_BUDGET_S", 480, minimum=0),
            part_max_rows=_int(env, "RETAIL_PART_MAX_ROWS", 1_000_000),
            part_target_mb=_int(env, "RETAIL_PART_TARGET_MB", 32),
            claim_lease_s=_int(env, "RETAIL_CLAIM_LEASE_S", 30),
            artifacts=(env.get("RETAIL_ARTIFACTS") or f"gs://{data_bucket}/artifacts").rstrip("/"),
            environment=env.get("RETAIL_ENV") or "",
            fetch_destinations=tuple(
                d.strip()
                for d in (
                    env.get("RETAIL_FETCH_DESTINATIONS") or f"gs://{data_bucket}/fetch/"
                ).split(",")
                if d.strip()
            ),
            results_dataset=env.get("RETAIL_RESULTS_DATASET")
            or f"{prefix.replace('-', '_')}results",
        )
