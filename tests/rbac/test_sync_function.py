"""sync_rbac as Cloud Functions calls it: a Scheduler tick or an audit-log event reconciles;
a tick with no change stops after the reads (the desired-state digest on GCS)."""

import base64
import json
import logging
from pathlib import Path

import pytest
import yaml
from functions_framework import create_app

from .test_reconcile_airflow import GROUPS, make_config, sees

SOURCE = str(Path(__file__).parents[2] / "functions" / "main.py")


def event(payload: dict) -> dict:
    data = base64.b64encode(json.dumps(payload).encode()).decode()
    return {"message": {"data": data, "messageId": "7"}, "subscription": "projects/p/s/sync-rbac"}


def summaries(caplog):
    return [r for r in caplog.records if r.name == "shared.rbac.sync"]


@pytest.fixture
def function(stack, settings, airflow, identity, monkeypatch, tmp_path):
    from shared.clients import storage_client
    from shared.rbac.ledger import GcsRoleLedger

    # The project roles were created by earlier runs in this Airflow: the ledger says so (a
    # role that exists and is not in it is someone's own, and is not taken over).
    bucket = storage_client(settings).bucket(stack.names.bucket("data"))
    GcsRoleLedger(bucket).add(set(make_config(airflow).managed_roles) - {"Admin"})
    config = make_config(airflow).model_dump(mode="json")
    path = tmp_path / "rbac.yaml"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("RETAIL_RBAC_CONFIG", str(path))
    monkeypatch.setenv("AIRFLOW_TEST_PW", airflow.admin_password)
    monkeypatch.setenv("RETAIL_DATA_BUCKET", stack.names.bucket("data"))
    return create_app("sync_rbac", SOURCE, "cloudevent").test_client()


def test_tick_reconciles_and_an_unchanged_tick_only_reads(function, airflow, identity, caplog):
    caplog.set_level(logging.INFO)
    identity.set_groups({**GROUPS, "promo@corp.example": ["fn-user@corp.example"]})
    first = function.post("/", json=event({"reason": "tick", "force": True}))
    assert first.status_code == 200
    assert sees(airflow, "fn-user@corp.example") == {"promo_uplift", "promo_calendar"}
    caplog.clear()
    assert function.post("/", json=event({"reason": "tick"})).status_code == 200
    [summary] = summaries(caplog)
    assert summary.unchanged is True and summary.airflow_writes == 0
    # A Workspace audit-log entry (as the log sink routes it) triggers a full reconcile.
    identity.set_groups({**GROUPS, "promo@corp.example": []})
    caplog.clear()
    audit = {"protoPayload": {"methodName": "google.admin.AdminService.removeGroupMember"}}
    assert function.post("/", json=event(audit)).status_code == 200
    [summary] = summaries(caplog)
    assert summary.unchanged is False and summary.changes >= 1
    assert sees(airflow, "fn-user@corp.example") == set()


def test_unreadable_config_is_logged_and_acknowledged(function, monkeypatch, tmp_path, caplog):
    bad = tmp_path / "bad.yaml"
    bad.write_text("airflow: [unclosed")
    monkeypatch.setenv("RETAIL_RBAC_CONFIG", str(bad))
    assert function.post("/", json=event({"reason": "tick"})).status_code == 200
    assert any("not valid YAML" in r.getMessage() for r in caplog.records)
