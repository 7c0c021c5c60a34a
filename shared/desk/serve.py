"""The desk as the API's process serves it, from its settings (``shared.settings``)."""

from __future__ import annotations

import yaml

from shared import clients
from shared.api.analytics import PromotionAnalytics
from shared.api.models import ModelStore
from shared.configs import read_text
from shared.desk.access import DeskAccess, GroupGrants
from shared.desk.decisions import DecisionLedger
from shared.desk.runs import TrainingJobs
from shared.desk.web import Desk, Identity
from shared.platform import environment
from shared.rbac.groups import GroupsReader
from shared.settings import Settings
from shared.training.launch import JOBS, job_name


def desk_from_settings(
    settings: Settings, store: ModelStore, analytics: PromotionAnalytics | None = None
) -> Desk | None:
    """The desk, or None where no access mapping is configured (``RETAIL_DESK_ACCESS``).
    Refuses to start with the development sign-in outside the local stack, or without IAP's
    audience or a session key."""
    if not settings.desk_access:
        return None
    if not settings.desk_session_secret:
        raise RuntimeError("the desk needs RETAIL_DESK_SESSION_SECRET (its cookie's key)")
    identity = Identity.for_deployment(local=settings.local,
                                       audience=settings.desk_iap_audience or None,
                                       development=settings.desk_dev_sign_in)  # fmt: skip
    gcs = clients.storage_client(settings)
    text = read_text(settings.desk_access, gcs)
    if text is None:
        raise RuntimeError(f"no desk access mapping at {settings.desk_access}")
    access = DeskAccess.model_validate(yaml.safe_load(text) or {})
    bq = clients.bigquery_client(settings)
    ledger = DecisionLedger(gcs, settings.data_bucket, bq=bq,
                            table=settings.results_table("desk_decisions"))  # fmt: skip

    def reader() -> GroupsReader:
        return GroupsReader(clients.cloud_identity_service(settings))

    return Desk(store, ledger, identity, GroupGrants(access, reader),
                fetch_root=settings.fetch_destinations[0], analytics=analytics,
                training=training_jobs(settings))  # fmt: skip


def training_jobs(settings: Settings) -> TrainingJobs:
    """The deployment's training jobs (their names, shapes) and an executions client."""
    shapes = environment(settings.environment or "prod").get("training", {})
    jobs = {job: job_name(settings.project, settings.region, settings.prefix, job)
            for job in JOBS}  # fmt: skip
    return TrainingJobs(clients.executions_client(settings), jobs, shapes)
