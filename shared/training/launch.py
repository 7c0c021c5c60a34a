"""Starting a training job: one Cloud Run job execution per (job, fetch run), with the
dataset and run id passed as environment overrides.

``fetch-complete`` may arrive twice, at the same moment, or its delivery may die mid-way. The
launch is claimed before it is done (``<marker prefix>/<job>/<run id>/_launch.json``,
:mod:`shared.claims`): one delivery creates the claim, calls ``RunJob`` and records the
operation on it; the others return the recorded launch. If the claim's holder went away without
recording anything, the next delivery waits out the lease, then asks the Cloud Run Admin API
for the job's executions: one that ran with this run id is recorded instead of starting another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from google.cloud import storage

if TYPE_CHECKING:  # imported when a job is started: the other functions start faster without it
    from google.cloud import run_v2

    from shared.settings import Settings

from shared import claims
from shared.identifiers import GcsUri
from shared.log import get_logger

log = get_logger("shared.training.launch")
JOBS = ("pricing", "promotions")
RUN_ID_VAR = "RETAIL_RUN_ID"


def job_name(project: str, region: str, prefix: str, job: str) -> str:
    return f"projects/{project}/locations/{region}/jobs/{prefix}{job}"


def executions_of_run(
    executions_client: run_v2.ExecutionsClient, job: str, run_id: str
) -> list[str]:
    """Names of the executions of ``job`` (full name) that ran with ``run_id`` (the Admin API
    lists each execution with the overrides it ran with)."""
    return [
        execution.name
        for execution in executions_client.list_executions(parent=job, timeout=30)
        if any(
            e.name == RUN_ID_VAR and e.value == run_id
            for container in execution.template.containers
            for e in container.env
        )
    ]


def execution_of_run(
    executions_client: run_v2.ExecutionsClient, job: str, run_id: str
) -> dict | None:
    """The execution of ``job`` that ran with ``run_id``, if any, as a launch claim records it."""
    found = executions_of_run(executions_client, job, run_id)
    return {"execution": found[0], "found_by": "list_executions"} if found else None


@dataclass(frozen=True)
class Launcher:
    """Where the training jobs run and what starting one needs: the Cloud Run Admin API
    clients, the bucket prefix of the launch claims, and the claims' lease."""

    jobs_client: run_v2.JobsClient
    executions_client: run_v2.ExecutionsClient | None
    gcs: storage.Client
    marker_prefix: str  # gs://bucket/prefix of the launch claims
    project: str
    region: str
    prefix: str = ""
    lease_s: float = claims.DEFAULT_LEASE_S

    @classmethod
    def of(cls, settings: Settings) -> Launcher:
        """The deployment's jobs, with the (cached) clients of ``settings``."""
        from shared import clients

        return cls(
            jobs_client=clients.jobs_client(settings),
            executions_client=clients.executions_client(settings),
            gcs=clients.storage_client(settings),
            marker_prefix=f"gs://{settings.data_bucket}/training",
            project=settings.project,
            region=settings.region,
            prefix=settings.prefix,
            lease_s=settings.claim_lease_s,
        )


def launch(job: str, run_id: str, manifest_uri: str, launcher: Launcher) -> str | None:
    """Start ``job`` on the run's dataset unless it was started; returns the operation name
    when this call started it, None when the run's execution already exists."""
    from google.cloud import run_v2

    if job not in JOBS:
        raise ValueError(f"unknown training job {job!r}; one of {JOBS}")
    name = job_name(launcher.project, launcher.region, launcher.prefix, job)
    claim = GcsUri.parse(launcher.marker_prefix).child(f"{job}/{run_id}/_launch.json")
    env = [
        run_v2.EnvVar(name="RETAIL_MANIFEST_URI", value=manifest_uri),
        run_v2.EnvVar(name="RETAIL_RUN_ID", value=run_id),
    ]
    request = run_v2.RunJobRequest(
        name=name,
        overrides=run_v2.RunJobRequest.Overrides(
            container_overrides=[run_v2.RunJobRequest.Overrides.ContainerOverride(env=env)]
        ),
    )

    def start() -> dict:
        operation = launcher.jobs_client.run_job(request=request, timeout=30)
        return {"operation": operation.operation.name}

    def started() -> dict | None:
        if launcher.executions_client is None:
            return None
        return execution_of_run(launcher.executions_client, name, run_id)

    outcome = claims.once(
        launcher.gcs.bucket(claim.bucket),
        claim.path,
        start,
        verify=started,
        lease_s=launcher.lease_s,
        labels={"run_id": run_id, "job": job},
    )
    if not outcome.acted:
        log.info("%s for run %s already launched", job, run_id, extra={"run_id": run_id})
        return None
    operation: str = outcome.result["operation"]
    log.info("launched %s for run %s: %s", job, run_id, operation,
             extra={"run_id": run_id, "job": job})  # fmt: skip
    return operation
