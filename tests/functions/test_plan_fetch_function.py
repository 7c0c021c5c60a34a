"""plan_fetch through the functions-framework test client, as Cloud Functions would call it."""

import base64
import json
import logging
from pathlib import Path

import pytest
from functions_framework import create_app

SOURCE = str(Path(__file__).parents[2] / "functions" / "main.py")


@pytest.fixture(scope="module")
def client():
    return create_app("plan_fetch", SOURCE, "cloudevent").test_client()


def cloud_event(data: bytes, message_id: str = "42") -> dict:
    return {
        "specversion": "1.0",
        "type": "google.cloud.pubsub.topic.v1.messagePublished",
        "source": "//pubsub.googleapis.com/projects/p/topics/fetch-requests",
        "id": message_id,
        "datacontenttype": "application/json",
        "data": {"message": {"data": base64.b64encode(data).decode(), "messageId": message_id}},
    }


def push_body(data: bytes, message_id: str = "43") -> dict:
    """The raw body a Pub/Sub push subscription sends."""
    return {
        "message": {"data": base64.b64encode(data).decode(), "messageId": message_id},
        "subscription": "projects/p/subscriptions/plan-fetch",
    }


def rejections(caplog):
    return [r for r in caplog.records if r.name == "shared.pubsub" and r.levelno == logging.ERROR]


@pytest.mark.parametrize("send", [cloud_event, push_body])
def test_malformed_message_is_logged_and_acknowledged(client, caplog, send):
    body = json.dumps({"table": "p-1234.d.t", "destination": "gs://bucket/x", "parallelism": -1})
    response = client.post("/projects/p/topics/fetch-requests", json=send(body.encode()))
    assert response.status_code == 200  # acknowledged: no redelivery loop
    [record] = rejections(caplog)
    assert record.field == "parallelism"
    assert record.outcome == "acknowledged"
    assert "parallelism" in record.getMessage()


def test_garbage_body_is_acknowledged(client, caplog):
    response = client.post("/projects/p/topics/fetch-requests", json=cloud_event(b"\x00garbage"))
    assert response.status_code == 200
    [record] = rejections(caplog)
    assert record.field == "<body>"


def test_misconfiguration_is_not_acknowledged(client, monkeypatch):
    """A deploy without a project is our fault, not the message's: 500, so it is redelivered."""
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    monkeypatch.delenv("GCP_PROJECT", raising=False)
    body = json.dumps({"table": "p-1234.d.t", "destination": "gs://bucket/x"}).encode()
    response = client.post("/projects/p/topics/fetch-requests", json=cloud_event(body))
    assert response.status_code == 500
