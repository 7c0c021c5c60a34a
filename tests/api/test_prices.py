"""Price recommendations served from the newest encrypted artifact, swapped without restart."""

import json
import uuid

import pytest

from shared import clients
from shared.api.app import create_app
from shared.api.models import ModelStore
from shared.training.artifacts import publish

from .conftest import KEYRING

pytestmark = pytest.mark.stack


def publish_model(settings, prefix, run_id, products):
    body = {"kind": "pricing", "run_id": run_id, "products": products}
    uri = f"gs://{settings.data_bucket}/{prefix}/pricing/{run_id}.model"
    publish(clients.storage_client(settings), uri, json.dumps(body).encode(), KEYRING)


def product(pid, elasticity=-2.0):
    return {
        "product_id": pid,
        "status": "ok",
        "elasticity": elasticity,
        "ci_low": -2.4,
        "ci_high": -1.6,
        "current_price": 2.5,
        "recommended_price": 2.25,
        "margin_price": None,
        "expected_revenue_change": 0.23,
    }


@pytest.fixture
def served(stack, settings):
    prefix = f"artifacts/api-{uuid.uuid4().hex[:6]}"
    store = ModelStore(
        clients.storage_client(settings),
        KEYRING,
        f"gs://{settings.data_bucket}/{prefix}",
        poll_s=3600,
    )
    return prefix, store, create_app(store, api_key="local-key").test_client()


def get(client, path):
    return client.get(path, headers={"X-API-Key": "local-key"})


def test_not_ready_until_a_model_is_loaded_then_served(settings, served):
    prefix, store, client = served
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 503
    assert get(client, "/v1/prices/1").json["error"]["status"] == 503
    publish_model(settings, prefix, "run-a", [product(1), product(2, -0.8)])
    assert store.refresh() is True and store.refresh() is False
    assert client.get("/readyz").json["pricing_run_id"] == "run-a"
    one = get(client, "/v1/prices/1").json
    assert one["recommended_price"] == 2.25 and one["model_run_id"] == "run-a"
    page = get(client, "/v1/prices?limit=1&offset=1").json
    assert page["total"] == 2 and [p["product_id"] for p in page["items"]] == [2]


def test_bad_requests_name_the_field(settings, served):
    prefix, store, client = served
    publish_model(settings, prefix, "run-a", [product(1)])
    store.refresh()
    assert client.get("/v1/prices/1").status_code == 401  # no key
    cases = {
        "/v1/prices/abc": (400, "product_id"),
        "/v1/prices/0": (400, "product_id"),
        "/v1/prices/999": (404, "product_id"),
        "/v1/prices?limit=0": (400, "limit"),
        "/v1/prices?offset=x": (400, "offset"),
    }
    for path, (status, field) in cases.items():
        response = get(client, path)
        assert (response.status_code, response.json["error"]["field"]) == (status, field), path


def test_a_new_run_is_picked_up_without_restart(settings, served):
    prefix, store, client = served
    publish_model(settings, prefix, "run-a", [product(1)])
    store.refresh()
    publish_model(settings, prefix, "run-b", [product(1, -3.0), product(7)])
    assert store.refresh() is True
    assert get(client, "/v1/prices/7").json["model_run_id"] == "run-b"
    assert get(client, "/v1/prices/1").json["elasticity"] == -3.0


def test_a_tampered_artifact_is_refused_and_the_old_model_keeps_serving(settings, served):
    prefix, store, client = served
    publish_model(settings, prefix, "run-a", [product(1)])
    store.refresh()
    bucket = clients.storage_client(settings).bucket(settings.data_bucket)
    blob = bucket.blob(f"{prefix}/pricing/run-a.model").download_as_bytes()
    bucket.blob(f"{prefix}/pricing/run-x.model").upload_from_string(blob[:-3] + b"AAA")
    bucket.blob(f"{prefix}/pricing/LATEST").upload_from_string(
        f"gs://{settings.data_bucket}/{prefix}/pricing/run-x.model"
    )
    with pytest.raises(Exception, match="tampered"):
        store.refresh()
    assert get(client, "/v1/prices/1").json["model_run_id"] == "run-a"
