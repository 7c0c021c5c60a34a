"""A served desk over a small pricing run: dairy and bakery products, two stores, a category
manager per category, a store manager, a reader; decisions on the GCS emulator."""

import threading
import uuid
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from shared import clients
from shared.api.analytics import PromotionAnalytics
from shared.api.app import create_app
from shared.api.models import LoadedPromotionModel, ModelStore, PricingModel
from shared.desk.access import DeskAccess, grants
from shared.desk.decisions import DecisionLedger
from shared.desk.serve import training_jobs
from shared.desk.web import Desk, Identity
from shared.training.artifacts import Keyring
from shared.training.pricing import Rules

ACCESS = DeskAccess(
    category_managers={"pricing-dairy@retail.example": ["dairy"],
                       "pricing-bakery@retail.example": ["bakery"]},
    store_managers={"store-1@retail.example": [1]},
    analysts=["promo-team@retail.example"],
    readers=["finance@retail.example"],
)  # fmt: skip
MEMBERS = {
    "pricing-dairy@retail.example": {"paul@retail.example"},
    "pricing-bakery@retail.example": {"bea@retail.example"},
    "store-1@retail.example": {"sam@retail.example"},
    "finance@retail.example": {"fin@retail.example"},
    "promo-team@retail.example": {"maria@retail.example"},
}


def product(pid, category, regular, recommended, gain):
    return {"product_id": pid, "status": "ok", "category": category, "regular_price": regular,
            "recommended_price": recommended, "unit_cost": round(regular * 0.6, 2),
            "objective": "profit", "decision": "move" if recommended != regular else "hold",
            "reason_code": "move" if recommended != regular else "gain_uncertain",
            "reason": f"profit {gain:+.2f} a week expected", "expected_gain": gain,
            "gain_low": gain / 2, "gain_high": gain * 1.5, "elasticity": -2.4, "ci_low": -3.0,
            "ci_high": -1.8, "binding_rule": None, "weekly_units": 120.0,
            "std_error": 0.3}  # fmt: skip


def run_model(run_id="run-desk-1"):
    products = [
        product(1, "dairy", 2.49, 2.29, 40.0),
        product(2, "dairy", 3.49, 3.79, 25.0),
        product(3, "dairy", 1.99, 1.99, 0.0),
        product(4, "bakery", 2.99, 2.79, 30.0),
        product(5, "dairy", 4.49, 4.29, 10.0),
    ]
    stores = []
    for store in (1, 2):
        for p in products:
            stores.append({"store_id": store, "product_id": p["product_id"],
                           "category": p["category"], "zone": 1,
                           "current_price": p["regular_price"],
                           "recommended_price": p["recommended_price"],
                           "reason": p["reason"], "valid_from": "2026-12-07",
                           "expected_gain": p["expected_gain"] / 2})  # fmt: skip
    by_store: dict[int, list[dict]] = {}
    for row in stores:
        by_store.setdefault(row["store_id"], []).append(row)
    # Product 1's last eight weeks: a promotion in week 6, nothing sold in week 3.
    weeks = [f"2026-10-{d:02d}" for d in (5, 12, 19, 26)] + [
        f"2026-11-{d:02d}" for d in (2, 9, 16, 23)
    ]
    history = {"weeks": weeks, "products": {"1": {
        "units": [110.0, 118.0, None, 121.0, 109.0, 260.0, 117.0, 120.0],
        "price": [2.49, 2.49, None, 2.49, 2.49, 1.99, 2.49, 2.49],
        "promo_share": [0.0, 0.0, None, 0.0, 0.0, 0.9, 0.0, 0.0]}}}  # fmt: skip
    zones = {1: [{"product_id": 1, "zone": 1, "price": 2.19, "stores": [1],
                  "expected_gain": 12.5}]}  # fmt: skip
    return PricingModel(run_id, f"gs://x/{run_id}.model",
                        {p["product_id"]: p for p in products}, by_store, zones=zones,
                        rules={"*": Rules()}, history=history)  # fmt: skip


@pytest.fixture
def desk(stack, settings, promotion_model, analytics_tables):
    gcs = clients.storage_client(settings)
    store = ModelStore(gcs, Keyring.parse(f"k1:{Keyring.new_key()}"),
                       f"gs://{settings.data_bucket}/artifacts-desk")  # fmt: skip
    store.pricing = run_model()
    store.promotions = LoadedPromotionModel("promo-1", "gs://x/promo-1.model", promotion_model)
    ledger = DecisionLedger(gcs, settings.data_bucket, f"desk-{uuid.uuid4().hex[:6]}/decisions")
    root = f"gs://{settings.data_bucket}/desk-runs-{uuid.uuid4().hex[:6]}"
    bq = clients.bigquery_client(settings)
    analytics = PromotionAnalytics(bq, analytics_tables[0], analytics_tables[1])
    served = Desk(store, ledger, Identity(development=True), lambda: grants(ACCESS, MEMBERS),
                  fetch_root=root, analytics=analytics,
                  training=training_jobs(settings))  # fmt: skip
    app = create_app(store, desk=served, secret_key=uuid.uuid4().hex, api_key="api-key")
    app.config["TEST_LEDGER"], app.config["TEST_FETCH_ROOT"] = ledger, root
    app.config["TEST_DESK"] = served
    return app


@pytest.fixture
def served_desk(desk):
    """The desk on a real HTTP port, for the browser."""
    server = make_server("127.0.0.1", 0, desk, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def write_runs(settings, root):
    """Three fetch runs under ``root``: complete, failed with its reason, and running."""
    import datetime as dt
    import json

    from shared.fetch.layout import RunLayout

    bucket = clients.storage_client(settings).bucket(settings.data_bucket)
    done = dt.datetime.now(dt.UTC).isoformat()
    records = {
        "run-complete": {"_plan.json": {"run_id": "run-complete", "chunks": []},
                         "_manifest.json": {"run_id": "run-complete", "rows": 1234,
                                            "bytes": 5_000_000, "completed_at": done}},
        "run-failed": {"_plan.json": {"run_id": "run-failed", "chunks": [1, 2]},
                       "_failed.json": {"run_id": "run-failed", "stage": "query",
                                        "reason": "column x not found"}},
        "run-going": {"_plan.json": {"run_id": "run-going", "chunks": [1, 2, 3]}},
    }  # fmt: skip
    for run, files in records.items():
        layout = RunLayout.of(f"{root}/{run}")
        for name, body in files.items():
            bucket.blob(layout.dest.child(name).path).upload_from_string(json.dumps(body))


REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / ".local" / "screenshots"  # the browser tests' screenshots


@pytest.fixture
def browser():
    from local.browser import chromium

    driver = chromium()
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()
