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


def publish_model(settings, prefix, run_id, products, stores=(), zones=()):
    body = {"kind": "pricing", "run_id": run_id, "products": products, "stores": list(stores),
            "zones": list(zones)}  # fmt: skip
    uri = f"gs://{settings.data_bucket}/{prefix}/pricing/{run_id}.model"
    publish(clients.storage_client(settings), uri, json.dumps(body).encode(), KEYRING)


def product(pid, elasticity=-2.0, *, gain=12.5, rank=None):
    moves = rank is not None
    return {
        "product_id": pid,
        "status": "ok",
        "elasticity": elasticity,
        "ci_low": -2.4,
        "ci_high": -1.6,
        "regular_price": 2.5,
        "unit_cost": 1.2,
        "objective": "profit",
        "decision": "move" if moves else "hold",
        "reason_code": "move" if moves else "gain_uncertain",
        "reason": "profit +12.50 a week" if moves else "90% interval [-1.00, +3.00] includes 0",
        "recommended_price": 2.29 if moves else 2.5,
        "candidate_price": 2.29,
        "expected_gain": gain,
        "gain_low": 4.0 if moves else -1.0,
        "gain_high": 20.0,
        "rank": rank,
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
    assert one["recommended_price"] == 2.5 and one["model_run_id"] == "run-a"
    assert one["decision"] == "hold" and "includes 0" in one["reason"]
    assert (one["gain_low"], one["gain_high"]) == (-1.0, 20.0)
    page = get(client, "/v1/prices?limit=1&offset=1").json
    assert page["total"] == 2 and [p["product_id"] for p in page["items"]] == [2]


def test_moves_are_listed_by_rank_with_their_interval_and_reason(settings, served):
    prefix, store, client = served
    products = [product(1), product(2, gain=3.0, rank=2), product(3, gain=9.0, rank=1)]
    publish_model(settings, prefix, "run-r", products)
    store.refresh()
    page = get(client, "/v1/prices?decision=move&order=rank").json
    assert [p["product_id"] for p in page["items"]] == [3, 2] and page["total"] == 2
    top = page["items"][0]
    assert top["expected_gain"] == 9.0 and top["gain_low"] == 4.0 and top["reason"]
    held = get(client, "/v1/prices?decision=hold").json["items"]
    assert [p["product_id"] for p in held] == [1]
    bad = get(client, "/v1/prices?order=gain")
    assert (bad.status_code, bad.json["error"]["field"]) == (400, "order")


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


def store_row(store, pid, zone, price, gain):
    return {
        "store_id": store, "product_id": pid, "category": "dairy", "zone": zone,
        "current_price": 2.5, "recommended_price": price,
        "decision": "move" if price != 2.5 else "hold",
        "reason_code": "zone_price" if zone else "little_evidence",
        "reason": f"zone {zone}" if zone else "keeps the chain price",
        "expected_gain": gain, "gain_low": gain / 2, "gain_high": gain * 2,
        "elasticity": -2.2, "ci_low": -2.9, "ci_high": -1.5,
        "evidence": "own" if zone else "pooled", "weeks": 40, "weekly_units": 30.0,
        "valid_from": "2026-12-07",
    }  # fmt: skip


def test_a_store_gets_its_price_list_and_a_product_its_zones(settings, served):
    prefix, store, client = served
    stores = [store_row(1, 1, 1, 2.29, 1.5), store_row(2, 1, 2, 2.49, 0.5),
              store_row(3, 1, 0, 2.29, 0.0), store_row(1, 2, 0, 2.5, 0.0),
              store_row(1, 3, 2, 2.79, 4.0)]  # fmt: skip
    zones = [
        {"product_id": 1, "zone": 1, "price": 2.29, "stores": [1], "expected_gain": 1.5},
        {"product_id": 1, "zone": 2, "price": 2.49, "stores": [2], "expected_gain": 0.5},
    ]
    products = [product(1, rank=1), product(2), product(3, rank=2)]
    publish_model(settings, prefix, "run-s", products, stores, zones)
    store.refresh()
    page = get(client, "/v1/prices?store=1&order=rank").json
    assert page["total"] == 3 and [p["product_id"] for p in page["items"]] == [3, 1, 2]
    first = page["items"][0]
    assert (first["store_id"], first["zone"], first["recommended_price"]) == (1, 2, 2.79)
    assert first["valid_from"] == "2026-12-07" and first["status"] == "ok"
    assert first["unit_cost"] == 1.2 and first["model_run_id"] == "run-s"
    in_zone = get(client, "/v1/prices?zone=2").json["items"]
    assert {(p["store_id"], p["product_id"]) for p in in_zone} == {(2, 1), (1, 3)}
    chain = get(client, "/v1/prices?store=1&zone=0").json["items"]
    assert [p["product_id"] for p in chain] == [2]
    found = get(client, "/v1/prices/1/zones").json
    assert [(z["zone"], z["price"], z["stores"]) for z in found["zones"]] == [
        (1, 2.29, [1]),
        (2, 2.49, [2]),
    ]
    assert found["chain_stores"] == [3] and found["chain_price"] == 2.29
    missing = get(client, "/v1/prices?store=99")
    assert (missing.status_code, missing.json["error"]["field"]) == (404, "store")
    bad = get(client, "/v1/prices?store=0")
    assert (bad.status_code, bad.json["error"]["field"]) == (400, "store")
    assert get(client, "/v1/prices/9/zones").status_code == 404
