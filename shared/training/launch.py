"""Starting a training job: one Cloud Run job execution per (job, fetch run), with the
dataset and run id passed as environment overrides.

``fetch-complete`` may arrive twice: a marker per job and run on GCS, written once the call
succeeded, means a later delivery starts nothing. Two deliveries racing before the marker
exists may both start an execution; that costs compute, not correctness, as tasks and the
merge are idempotent.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from google.api_core import exceptions as gexc
from google.cloud import storage

if TYPE_CHECKING:  # imported when a job is started: the other functions start faster without it
    from google.cloud import run_v2

from shared.identifiers import GcsUri
from shared.log import get_logger

log = get_logger("shared.training.launch")
JOBS = ("pricing", "promotions")


def job_name(project: str, region: str, prefix: str, job: str) -> str:
    return f"projects/{project}/locations/{region}/jobs/{prefix}{job}"


def launch(
    job: str,
    run_id: str,
    manifest_uri: str,
    *,
    jobs_client: run_v2.JobsClient,
    gcs: storage.Client,
    marker_prefix: str,
    project: str,
    region: str,
    prefix: str = "",
) -> str | None:
    """Start ``job`` on the run's dataset unless already started; returns the operation name."""
    from google.cloud import run_v2

    if job not in JOBS:
        raise ValueError(f"unknown training job {job!r}; one of {JOBS}")
    marker = GcsUri.parse(marker_prefix).child(f"{job}/{run_id}/_launched")
    blob = gcs.bucket(marker.bucket).blob(marker.path)
    if blob.exists():
        log.info("%s for run %s already launched", job, run_id, extra={"run_id": run_id})
        return None
    env = [
        run_v2.EnvVar(name="RETAIL_MANIFEST_URI", value=manifest_uri),
        run_v2.EnvVar(name="RETAIL_RUN_ID", value=run_id),
    ]
    request = run_v2.RunJobRequest(
        name=job_name(project, region, prefix, job),
        overrides=run_v2.RunJobRequest.Overrides(
            container_overrides=[run_v2.RunJobRequest.Overrides.ContainerOverride(env=env)]
        ),
    )
    operation = jobs_client.run_job(request=request)
    name = operation.operation.name
    with contextlib.suppress(gexc.PreconditionFailed):  # a concurrent duplicate also started
        blob.upload_from_string(name, if_generation_match=0)
    log.info("launched %s for run %s: %s", job, run_id, name, extra={"run_id": run_id, "job": job})
    return name
