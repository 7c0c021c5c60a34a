"""The platform's configuration: one frozen, validated object read from the environment.

This module is the only reader of the process environment in the platform's code. The same code
runs in the cloud and on the local emulator stack; only the endpoints differ, and an endpoint is
local exactly when its ``*_EMULATOR_HOST`` variable is set. Resource names default to those
:class:`shared.platform.Names` gives the environment (``RETAIL_ENV``, default ``prod``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.errors import PlatformError
from shared.platform import DeclarationError, Names, fetch_root


class SettingsError(PlatformError, ValueError):
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
class FetchLimits:
    """How a fetch is cut: streams per read session, the work budget of one function
    invocation (Cloud Functions stop event-driven functions at 540 s; a margin is kept to hand
    work on) and the rows of a part (cut so a part is about ``part_target_mb`` of Arrow data:
    a worker's memory is bounded by one part whatever the table's width or size)."""

    max_streams: int = 16
    time_budget_s: int = 480
    part_max_rows: int = 1_000_000
    part_target_mb: int = 32


@dataclass(frozen=True)
class JobTask:
    """What a Cloud Run job task is told: which task of how many (set by Cloud Run, or by the
    local runner) and the run it trains on (the execution's overrides)."""

    index: int = 0
    count: int = 1
    run_id: str = ""
    manifest_uri: str = ""


@dataclass(frozen=True)
class Settings:
    """Everything a function, job, the API or the CLI needs to know about where it runs."""

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
    cloud_identity_emulator_host: str | None = None
    region: str = "europe-west1"
    prefix: str = ""
    limits: FetchLimits = field(default_factory=FetchLimits)
    # Where trained models, their pointers and scores live (a versioned bucket in the cloud).
    artifacts: str = ""
    # How long a claimed side effect (shared/claims.py) may go without a recorded result
    # before another delivery checks the real state and takes over.
    claim_lease_s: int = 30
    # A 403 on a message younger than this is retried: IAM grants may still be propagating.
    iam_propagation_s: int = 420
    # Where fetches may write: gs://bucket/prefix entries; a destination must lie below one.
    fetch_destinations: tuple[str, ...] = ()
    # The deployment environment (shared/platform.yaml) and its results dataset.
    environment: str = ""
    results_dataset: str = "results"
    # The retailer's source dataset (``project.dataset``) and the tables the training jobs and
    # the API read beside the fetched transactions.
    source_dataset: str = ""
    products_table: str = ""
    promotions_table: str = ""
    stores_table: str = ""
    # The API's model pointers are polled this often.
    model_poll_s: float = 30.0
    # sync_rbac's configuration (gs:// or a file).
    rbac_config: str = ""
    # Artifact keys: literal ("id:key,..."), a file, or a Secret Manager secret (its name).
    artifact_keys: str = field(default="", repr=False)
    artifact_keys_file: str = ""
    artifact_keys_secret: str = ""
    # Locally only: the API's key (the deployed API sits behind Cloud Run's IAM).
    api_key: str = field(default="", repr=False)
    # The desk (shared/desk/): who may do what (a YAML file or gs:// object; none: no desk),
    # IAP's audience, the local stack's development sign-in, the session cookie's key.
    desk_access: str = ""
    desk_iap_audience: str = ""
    desk_dev_sign_in: bool = False
    desk_session_secret: str = field(default="", repr=False)
    # Serve only the desk (its own Cloud Run service behind IAP): no JSON API there.
    desk_only: bool = False
    # The port a service listens on (Cloud Run sets PORT).
    port: int = 8080
    task: JobTask = field(default_factory=JobTask)

    @property
    def max_streams(self) -> int:
        return self.limits.max_streams

    @property
    def time_budget_s(self) -> int:
        return self.limits.time_budget_s

    @property
    def part_max_rows(self) -> int:
        return self.limits.part_max_rows

    @property
    def part_target_mb(self) -> int:
        return self.limits.part_target_mb

    def fetch_destination(self, run_id: str) -> str:
        """Where a run writes unless its request says otherwise: below the first allowed root."""
        return f"{self.fetch_destinations[0].rstrip('/')}/{run_id}"

    def topic(self, base: str) -> str:
        """The deployed name of a topic of ``shared.topology``: the environment's prefix + base."""
        return f"{self.prefix}{base}"

    def results_table(self, name: str) -> str:
        """``project.dataset.table`` of a results table (``pricing``, ``promotion_performance``)."""
        return f"{self.project}.{self.results_dataset}.{name}"

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
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, project_required: bool = True
    ) -> Settings:
        """Read and validate the settings; raises :class:`SettingsError` naming the variable.

        ``project_required=False`` is for a command that calls no project-scoped API (the
        RBAC sync reads Cloud Identity and Airflow only)."""
        env = os.environ if env is None else env
        project = env.get("GOOGLE_CLOUD_PROJECT") or env.get("GCP_PROJECT") or ""
        if not project and project_required:
            raise SettingsError("GOOGLE_CLOUD_PROJECT is not set")
        environment = env.get("RETAIL_ENV") or "prod"
        names = Names(environment, project)
        try:
            prefix = names.prefix
        except DeclarationError as exc:
            raise SettingsError(f"RETAIL_ENV: {exc}") from None
        if env.get("RETAIL_PREFIX") not in (None, "", prefix):
            raise SettingsError(
                f"RETAIL_PREFIX={env['RETAIL_PREFIX']!r} but environment {environment!r} "
                f"declares prefix {prefix!r}"
            )
        data_bucket = env.get("RETAIL_DATA_BUCKET") or names.bucket("data")
        source = f"{project}.{names.dataset('source')}"
        return cls(
            project=project,
            location=env.get("BIGQUERY_LOCATION", "US"),
            data_bucket=data_bucket,
            temp_dataset=env.get("RETAIL_TEMP_DATASET") or names.dataset("fetch_tmp"),
            pubsub_emulator_host=env.get("PUBSUB_EMULATOR_HOST") or None,
            storage_emulator_host=env.get("STORAGE_EMULATOR_HOST") or None,
            bigquery_emulator_host=env.get("BIGQUERY_EMULATOR_HOST") or None,
            bigquery_storage_emulator_host=env.get("BIGQUERY_STORAGE_EMULATOR_HOST") or None,
            cloud_run_emulator_host=env.get("CLOUD_RUN_EMULATOR_HOST") or None,
            secret_manager_emulator_host=env.get("SECRET_MANAGER_EMULATOR_HOST") or None,
            cloud_identity_emulator_host=env.get("CLOUD_IDENTITY_EMULATOR_HOST") or None,
            region=env.get("RETAIL_REGION") or "europe-west1",
            prefix=prefix,
            limits=FetchLimits(
                max_streams=_int(env, "RETAIL_MAX_STREAMS", 16),
                time_budget_s=_int(env, "RETAIL_TIME_BUDGET_S", 480, minimum=0),
                part_max_rows=_int(env, "RETAIL_PART_MAX_ROWS", 1_000_000),
                part_target_mb=_int(env, "RETAIL_PART_TARGET_MB", 32),
            ),
            claim_lease_s=_int(env, "RETAIL_CLAIM_LEASE_S", 30),
            iam_propagation_s=_int(env, "RETAIL_IAM_PROPAGATION_S", 420, minimum=0),
            artifacts=(env.get("RETAIL_ARTIFACTS") or f"gs://{data_bucket}/artifacts").rstrip("/"),
            environment=environment,
            fetch_destinations=tuple(
                d.strip()
                for d in (env.get("RETAIL_FETCH_DESTINATIONS") or fetch_root(data_bucket)).split(
                    ","
                )
                if d.strip()
            ),
            results_dataset=env.get("RETAIL_RESULTS_DATASET") or names.dataset("results"),
            source_dataset=source,
            products_table=env.get("RETAIL_PRODUCTS_TABLE") or f"{source}.products",
            promotions_table=env.get("RETAIL_PROMOTIONS_TABLE") or f"{source}.promotions",
            stores_table=env.get("RETAIL_STORES_TABLE") or f"{source}.stores",
            model_poll_s=float(_int(env, "RETAIL_MODEL_POLL_S", 30)),
            rbac_config=env.get("RETAIL_RBAC_CONFIG") or "",
            artifact_keys=env.get("RETAIL_ARTIFACT_KEYS") or "",
            artifact_keys_file=env.get("RETAIL_ARTIFACT_KEYS_FILE") or "",
            artifact_keys_secret=env.get("RETAIL_ARTIFACT_KEYS_SECRET") or "",
            api_key=env.get("RETAIL_API_KEY") or "",
            desk_access=env.get("RETAIL_DESK_ACCESS") or "",
            desk_iap_audience=env.get("RETAIL_DESK_IAP_AUDIENCE") or "",
            desk_dev_sign_in=env.get("RETAIL_DESK_DEV_SIGN_IN") == "1",
            desk_session_secret=env.get("RETAIL_DESK_SESSION_SECRET") or "",
            desk_only=env.get("RETAIL_DESK_ONLY") == "1",
            port=_int(env, "PORT", 8080),
            task=JobTask(
                index=_int(env, "CLOUD_RUN_TASK_INDEX", 0, minimum=0),
                count=_int(env, "CLOUD_RUN_TASK_COUNT", 1),
                run_id=env.get("RETAIL_RUN_ID") or "",
                manifest_uri=env.get("RETAIL_MANIFEST_URI") or "",
            ),
        )


def named_secret(name: str, env: Mapping[str, str] | None = None) -> str:
    """The value of the variable ``name`` that a configuration file names (e.g. the RBAC
    config's Airflow password), or ``""``; read here like every other variable."""
    env = os.environ if env is None else env
    return env.get(name, "") if name else ""


def deployable_name(env: Mapping[str, str] | None = None) -> str:
    """Which deployable this process is, from the variables the platform sets in the cloud:
    ``FUNCTION_TARGET`` (a function), ``CLOUD_RUN_JOB`` (a job) or ``K_SERVICE`` (the API)."""
    env = os.environ if env is None else env
    for var in ("FUNCTION_TARGET", "CLOUD_RUN_JOB", "K_SERVICE"):
        if env.get(var):
            return env[var]
    return "unknown"
