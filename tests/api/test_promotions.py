"""Planned-promotion predictions and realised-promotion analytics, and the whole API held to
its OpenAPI document by schemathesis."""

import datetime as dt
import json
import uuid

import pytest

from shared import clients
from shared.api.analytics import Filters, PromotionAnalytics
from shared.api.app import create_app
from shared.api.models import ModelStore
from shared.api.schemas import MAX_BATCH

from .conftest import KEYRING, publish_promotions
from .test_prices import product, publish_model

pytestmark = pytest.mark.stack
HEADERS = {"X-API-Key": "local-key"}


@pytest.fixture
def served(stack, settings, analytics_tables):
    prefix = f"artifacts/api-{uuid.uuid4().hex[:6]}"
    store = ModelStore(
        clients.storage_client(settings), KEYRING, f"gs://{settings.data_bucket}/{prefix}", 3600
    )
    perf_table, stores_table, _ = analytics_tables
    analytics = PromotionAnalytics(clients.bigquery_client(settings), perf_table, stores_table)
    app = create_app(store, analytics=analytics, api_key="local-key")
    return prefix, store, app.test_client()


def plan(product_id, **overrides):
    return {
        "product_id": product_id,
        "mechanic": "tpr",
        "discount": 0.25,
        "start_date": "2025-03-03",
        "duration_days": 7,
        "feature": True,
        **overrides,
    }


def predict(client, body):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post(
        "/v1/promotions:predict", data=data, headers=HEADERS, content_type="application/json"
    )


def test_planned_promotions_get_revenue_and_uplift(settings, served, promotion_model):
    prefix, store, client = served
    assert predict(client, plan(1)).status_code == 503  # no promotion model yet
    publish_promotions(settings, prefix, promotion_model, "promo-1")
    assert store.refresh() is True
    assert client.get("/readyz").json["promotions_run_id"] == "promo-1"

    products = sorted(promotion_model.baselines)
    one = predict(client, plan(products[0])).json
    assert one["model_run_id"] == "promo-1" and one["product_id"] == products[0]
    assert one["predicted_revenue"] == pytest.approx(one["baseline_revenue"] * one["uplift"])
    assert one["uplift"] > 1.1  # a featured 25% price cut sells more than a normal week

    batch = predict(
        client,
        {
            "promotions": [
                plan(products[0]),
                plan(products[1], duration_days=14, stores=2),
                plan(products[2], mechanic="bogo", discount=0.5, display=True),
            ]
        },
    ).json
    assert [p["product_id"] for p in batch["predictions"]] == products[:3]
    assert batch["predictions"][0] == one
    # two stores for two weeks: baseline = weekly revenue per store x 2 x 2
    per_store = promotion_model.baselines[products[1]].weekly_revenue_per_store
    assert batch["predictions"][1]["baseline_revenue"] == pytest.approx(per_store * 4)


def test_bad_promotion_requests_name_the_field(settings, served, promotion_model):
    prefix, store, client = served
    publish_promotions(settings, prefix, promotion_model, "promo-1")
    store.refresh()
    known = min(promotion_model.baselines)
    missing = plan(known)
    del missing["mechanic"]
    cases = [
        (missing, 400, "mechanic"),
        (plan(known, discount="0.2"), 400, "discount"),
        (plan(known, discount=-0.1), 400, "discount"),
        (plan(known, discount=1.0), 400, "discount"),
        (plan(known, duration_days=0), 400, "duration_days"),
        (plan(known, start_date="03/03/2025"), 400, "start_date"),
        (plan(known, mechanic="raffle"), 400, "mechanic"),
        (plan(known, colour="red"), 400, "colour"),
        (plan(99_999), 404, "product_id"),
        ({"promotions": [plan(known), plan(known, feature="yes")]}, 400, "promotions[1].feature"),
        ({"promotions": [plan(known), plan(99_999)]}, 404, "promotions[1].product_id"),
        ({"promotions": []}, 400, "promotions"),
        ({"promotions": [plan(known)] * (MAX_BATCH + 1)}, 413, "promotions"),
        (b'{"product_id": 1, "mechanic": "tpr"', 400, None),
        (b"\xff\xfe", 400, None),
        (b"[1, 2]", 400, None),
        (b'{"a": "' + b"x" * (2 << 20) + b'"}', 413, None),
    ]
    for body, status, field in cases:
        response = predict(client, body)
        error = response.json["error"]
        assert (response.status_code, error["field"]) == (status, field), (body, error)
        assert error["status"] == status and error["reason"]


def test_analytics_filters_and_pages_past_promotions(served, analytics_tables, world):
    _, _, client = served
    _, _, perf = analytics_tables
    w, _ = world
    rows = perf.to_pylist()

    def ids(query):
        response = client.get(f"/v1/promotions/analytics?{query}", headers=HEADERS)
        assert response.status_code == 200, response.json
        return [item["promo_id"] for item in response.json["items"]], response.json

    def expected(keep):
        chosen = [r for r in rows if keep(r)]
        chosen.sort(key=lambda r: (-r["start_date"].toordinal(), r["promo_id"]))
        return [r["promo_id"] for r in chosen]

    everything = expected(lambda r: True)
    got, body = ids("limit=500")
    assert got == everything[:500]
    # pages of 7 put back together give the same list, and the last page says so
    pages, offset = [], 0
    while offset is not None and offset < 40:
        page, body = ids(f"limit=7&offset={offset}")
        pages += page
        offset = body["next_offset"]
    assert pages == everything[: len(pages)] and len(pages) >= 35

    product = rows[0]["product_id"]
    assert ids(f"product_id={product}")[0] == expected(lambda r: r["product_id"] == product)
    assert ids("mechanic=bogo")[0] == expected(lambda r: r["mechanic"] == "bogo")
    category = rows[0]["category"]
    assert ids(f"category={category}")[0] == expected(lambda r: r["category"] == category)
    region = dict(
        zip(w.stores["store_id"].to_pylist(), w.stores["region"].to_pylist(), strict=True)
    )
    assert ids("store_id=3&limit=500")[0] == expected(lambda r: r["region"] in ("all", region[3]))
    start, end = dt.date(2024, 3, 1), dt.date(2024, 3, 31)
    assert ids("start=2024-03-01&end=2024-03-31")[0] == expected(
        lambda r: r["end_date"] >= start and r["start_date"] <= end
    )
    assert ids("product_id=99999")[0] == []
    assert ids("start=2024-03-02&end=2024-03-01")[0] == []  # an empty period

    for query, field in [
        ("mechanic=raffle", "mechanic"),
        ("start=2024-13-01", "start"),
        ("limit=501", "limit"),
        ("store_id=x", "store_id"),
    ]:
        response = client.get(f"/v1/promotions/analytics?{query}", headers=HEADERS)
        assert (response.status_code, response.json["error"]["field"]) == (400, field), query


def test_the_summary_of_past_promotions_adds_up_to_their_rows(settings, analytics_tables):
    perf_table, stores_table, perf = analytics_tables
    analytics = PromotionAnalytics(clients.bigquery_client(settings), perf_table, stores_table)
    rows = perf.to_pylist()
    category = rows[0]["category"]
    for filters, keep in [
        (Filters(), lambda r: True),
        (Filters(category=category), lambda r: r["category"] == category),
    ]:
        chosen = [r for r in rows if keep(r)]
        found = analytics.summary(filters, points=50)
        assert found["promotions"] == len(chosen)
        for mechanic in {r["mechanic"] for r in chosen}:
            mine = [r for r in chosen if r["mechanic"] == mechanic]
            row = next(x for x in found["by_mechanic"] if x["key"] == mechanic)
            uplift = sum(r["revenue"] for r in mine) / sum(r["baseline_revenue"] for r in mine)
            assert (row["promotions"], row["uplift"]) == (len(mine), pytest.approx(uplift))
        months = {f"{r['start_date']:%Y-%m}" for r in chosen}
        assert [x["key"] for x in found["by_month"]] == sorted(months)
        assert sum(x["promotions"] for x in found["by_category"]) == len(chosen)
        # predicted before they ran: the earliest have none; the error is over those that do
        predicted = [r for r in chosen if r["predicted_revenue"] is not None]
        assert 0 < found["predicted"] == len(predicted) < len(chosen)
        miss = sum(abs(r["revenue"] - r["predicted_revenue"]) for r in predicted)
        assert found["wape"] == pytest.approx(miss / sum(r["revenue"] for r in predicted))
        newest = sorted(predicted, key=lambda r: (-r["start_date"].toordinal(), r["promo_id"]))
        assert [p["promo_id"] for p in found["points"]] == [r["promo_id"] for r in newest[:50]]


def test_no_request_breaks_the_contract(settings, served, promotion_model):
    """Generated requests (valid and not) for every operation: no 5xx, and every response
    matches /openapi.json (status code, content type, body schema)."""
    import schemathesis
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hsettings

    prefix, store, client = served
    publish_model(settings, prefix, "run-a", [product(i) for i in range(1, 30)])
    publish_promotions(settings, prefix, promotion_model, "promo-1")
    store.refresh()
    schema = schemathesis.openapi.from_wsgi("/openapi.json", client.application)
    operations = [result.ok() for result in schema.get_all_operations()]
    # The document covers every route the app serves (besides itself).
    routes = {
        r.rule.replace("<", "{").replace(">", "}")
        for r in schema.app.url_map.iter_rules()
        if r.endpoint not in ("static", "openapi")
    }
    assert {op.path for op in operations} == routes
    for operation in operations:

        @given(case=operation.as_strategy())
        @hsettings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case):
            case.call_and_validate(headers=HEADERS)

        check()


def test_a_model_swap_under_load_loses_no_request(settings, served, promotion_model):
    """Four clients predict without pause while a new run is published; the store swaps it
    in from its poll loop. Every answer is a 200, from the old run and then the new."""
    import threading
    import time
    import urllib.error
    import urllib.request

    from werkzeug.serving import make_server

    prefix, store, client = served
    publish_promotions(settings, prefix, promotion_model, "promo-1")
    store.refresh()
    store.poll_s = 0.2
    server = make_server("127.0.0.1", 0, client.application, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    store.start()
    url = f"http://127.0.0.1:{server.server_port}/v1/promotions:predict"
    body = json.dumps(plan(min(promotion_model.baselines))).encode()
    statuses, runs, stop = [], [], threading.Event()

    def hammer():
        headers = {**HEADERS, "Content-Type": "application/json"}
        while not stop.is_set():
            try:
                request = urllib.request.Request(url, data=body, headers=headers)
                with urllib.request.urlopen(request, timeout=10) as response:
                    runs.append(json.loads(response.read())["model_run_id"])
                    statuses.append(response.status)
            except urllib.error.HTTPError as exc:
                statuses.append(exc.code)
            except OSError:
                statuses.append(-1)

    def wait_until(condition, seconds=30.0):
        deadline = time.monotonic() + seconds
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert condition(), "timed out"

    hammers = [threading.Thread(target=hammer) for _ in range(4)]
    try:
        for h in hammers:
            h.start()
        wait_until(lambda: len(statuses) >= 50)
        publish_promotions(settings, prefix, promotion_model, "promo-2")
        wait_until(lambda: "promo-2" in runs)
        count = len(statuses)
        wait_until(lambda: len(statuses) >= count + 50)
    finally:
        stop.set()
        for h in hammers:
            h.join()
        store.stop()
        server.shutdown()
    assert set(statuses) == {200}
    first_new = runs.index("promo-2")
    # Requests already in flight at the swap may still answer from the old run; none after.
    assert set(runs[:first_new]) == {"promo-1"} and set(runs[first_new + 4 :]) == {"promo-2"}


def test_hostile_bodies_get_a_json_4xx_never_a_500_or_invalid_json(
    settings, served, promotion_model
):
    """Issue 14, part 5: deep nesting, huge numbers, NaN, a wrong Content-Type."""
    prefix, store, client = served
    publish_promotions(settings, prefix, promotion_model, "promo-h")
    store.refresh()
    product_id = sorted(promotion_model.baselines)[0]
    cases = {
        "deep": "[" * 10_000 + "]" * 10_000,
        "deep in promotions": '{"promotions": ' + "[" * 10_000 + "]" * 10_000 + "}",
        "stores 10**400": json.dumps(plan(product_id))[:-1] + ', "stores": ' + "9" * 401 + "}",
        "stores 10**308": json.dumps(plan(product_id, stores=10**308)),
        "NaN discount": json.dumps(plan(product_id)).replace("0.25", "NaN"),
        "Infinity": '{"product_id": Infinity}',
    }  # fmt: skip
    for name, body in cases.items():
        answer = predict(client, body)
        assert answer.status_code == 400, (name, answer.status_code)
        json.loads(answer.get_data(as_text=True))  # valid JSON, whatever the input
        assert answer.json["error"]["reason"], name
    wrong_type = client.post(
        "/v1/promotions:predict", data=json.dumps(plan(product_id)), headers=HEADERS,
        content_type="text/plain",
    )  # fmt: skip
    assert (
        wrong_type.status_code == 415 and "application/json" in wrong_type.json["error"]["reason"]
    )
    fine = predict(client, plan(product_id, stores=100))
    assert (
        fine.status_code == 200 and json.loads(fine.get_data(as_text=True))["predicted_revenue"] > 0
    )


def test_analytics_before_the_first_promotion_run_answers_503_with_a_reason(stack, settings):
    missing = f"{settings.project}.{settings.results_dataset}.no_table_{uuid.uuid4().hex[:6]}"
    analytics = PromotionAnalytics(clients.bigquery_client(settings), missing, missing)
    store = ModelStore(clients.storage_client(settings), KEYRING, f"gs://{settings.data_bucket}/x")
    client = create_app(store, analytics=analytics, api_key="local-key").test_client()
    answer = client.get("/v1/promotions/analytics", headers=HEADERS)
    assert answer.status_code == 503
    assert "promotion job has not" in answer.json["error"]["reason"]
