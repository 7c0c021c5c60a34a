"""The one runner of the Cloud Run jobs: settings, clients, logging and the exit code.

A job module names what it does with a :class:`JobContext`; the runner reads the settings (the
task and the run come from Cloud Run's variables and the execution's overrides), builds the
clients once, and turns a refusal into exit code 2 (logged with its reason) so Cloud Run does
not retry what cannot succeed. Anything else propagates: the task fails and Cloud Run retries it
up to the job's ``max_retries``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.cloud import bigquery, storage

from shared import clients, log
from shared.errors import PermanentError
from shared.fetch.library import gcs_filesystem
from shared.settings import Settings, SettingsError
from shared.training.artifacts import Keyring


@dataclass(frozen=True)
class JobContext:
    """What a job task works with: its settings (``settings.task``) and its clients."""

    settings: Settings
    gcs: storage.Client
    bq: bigquery.Client
    filesystem: Any

    def keyring(self) -> Keyring:
        """The artifact keys (from Secret Manager in the cloud)."""
        return Keyring.configured(self.settings, lambda: clients.secret_client(self.settings))


def run(job: str, body: Callable[[JobContext], None]) -> int:
    """Run ``body`` as task ``CLOUD_RUN_TASK_INDEX`` of job ``job``; the process's exit code."""
    log.configure()
    logger = log.get_logger(f"jobs.{job}")
    try:
        settings = Settings.from_env()
        task = settings.task
        if not task.run_id or not task.manifest_uri:
            raise SettingsError(
                "RETAIL_RUN_ID and RETAIL_MANIFEST_URI must be set (the execution's overrides)"
            )
        body(
            JobContext(
                settings,
                gcs=clients.storage_client(settings),
                bq=clients.bigquery_client(settings),
                filesystem=gcs_filesystem(settings),
            )
        )
    except (PermanentError, SettingsError) as exc:
        logger.error("%s task failed: %s", job, exc, extra={"error_type": type(exc).__name__})
        return 2
    return 0
