"""Price recommendations: one product's, and pages of them."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from shared.api.http import ApiError, failed, query, validated
from shared.api.models import ModelStore, PricingModel
from shared.api.openapi import Routes, operation
from shared.api.schemas import (
    PRICE_FIELDS,
    Price,
    PriceList,
    PricesQuery,
    ProductPath,
    ZoneList,
)


def _price(row: dict, run_id: str, product: dict | None = None) -> dict:
    """A recommendation; a store's row takes the product's status, method and cost."""
    found = {k: row.get(k) for k in PRICE_FIELDS}
    if product is not None:
        for k in ("status", "objective", "unit_cost", "regular_price", "cost_source"):
            found[k] = product.get(k)
    return {**found, "model_run_id": run_id}


def routes(store: ModelStore) -> Routes:
    """The price endpoints, serving ``store``'s pricing model."""
    from flask import request

    served = Routes(Blueprint("prices", __name__))
    no_model = failed("no model yet")

    def model():
        if store.pricing is None:
            store.catch_up()
        current = store.pricing
        if current is None:
            raise ApiError(503, f"no pricing model: {store.not_ready_reason()}")
        return current

    def product_of(product_id: str) -> tuple[PricingModel, dict]:
        """The served model and its row of the path's product (400 or 404 otherwise)."""
        pid = validated(ProductPath, {"product_id": product_id}).product_id
        current = model()
        row = current.products.get(pid)
        if row is None:
            raise ApiError(404, f"unknown product {pid}", "product_id")
        return current, row

    @operation(
        served,
        "get",
        "/v1/prices/{product_id}",
        "The recommendation for one product",
        {200: ("recommendation", Price), 404: failed("unknown product"), 503: no_model},
        path_params=ProductPath,
    )
    def price(product_id: str) -> ResponseReturnValue:
        current, row = product_of(product_id)
        return jsonify(_price(row, current.run_id))

    @operation(
        served,
        "get",
        "/v1/prices",
        "A page of recommendations (order=rank: the moves by expected gain, largest first); "
        "with store=S, that store's price list; with zone=Z, that zone's prices",
        {
            200: ("a page of recommendations", PriceList),
            404: failed("unknown store"),
            503: no_model,
        },
        query=PricesQuery,
    )
    def prices() -> ResponseReturnValue:
        asked = query(PricesQuery, request)
        current = model()
        if asked.store is not None or asked.zone is not None:
            return jsonify(_store_prices(current, asked))
        ids = sorted(current.products)
        if asked.decision:
            ids = [i for i in ids if current.products[i].get("decision") == asked.decision]
        if asked.order == "rank":
            ids.sort(key=lambda i: (current.products[i].get("rank") is None,
                                    current.products[i].get("rank") or 0, i))  # fmt: skip
        window = ids[asked.offset : asked.offset + asked.limit]
        page = [_price(current.products[i], current.run_id) for i in window]
        return jsonify({"items": page, "total": len(ids), "model_run_id": current.run_id})

    @operation(
        served,
        "get",
        "/v1/prices/{product_id}/zones",
        "The product's price zones: the stores that share each price",
        {200: ("the zones", ZoneList), 404: failed("unknown product"), 503: no_model},
        path_params=ProductPath,
    )
    def zones(product_id: str) -> ResponseReturnValue:
        current, product = product_of(product_id)
        pid = product["product_id"]
        rows = current.store_rows.get(pid, [])
        return jsonify(
            {
                "product_id": pid,
                "zones": [
                    {k: z[k] for k in ("zone", "price", "stores", "expected_gain")}
                    for z in current.zones.get(pid, [])
                ],
                "chain_stores": sorted(r["store_id"] for r in rows if not r.get("zone")),
                "chain_price": product.get("recommended_price"),
                "model_run_id": current.run_id,
            }
        )

    return served


def _store_prices(current: PricingModel, asked: PricesQuery) -> dict:
    """A page of store prices: one store's list, or one zone's, or both."""
    if asked.store is not None and asked.store not in current.stores:
        raise ApiError(404, f"no prices for store {asked.store}", "store")
    if asked.store is not None:
        rows = current.stores[asked.store]
    else:
        rows = [r for found in current.stores.values() for r in found]
    if asked.zone is not None:
        rows = [r for r in rows if (r.get("zone") or 0) == asked.zone]
    if asked.decision:
        rows = [r for r in rows if r.get("decision") == asked.decision]
    key = (lambda r: (-(r.get("expected_gain") or 0), r["product_id"], r["store_id"])) if (
        asked.order == "rank"
    ) else (lambda r: (r["store_id"], r["product_id"]))  # fmt: skip
    rows = sorted(rows, key=key)
    window = rows[asked.offset : asked.offset + asked.limit]
    items = [_price(r, current.run_id, current.products.get(r["product_id"])) for r in window]
    return {"items": items, "total": len(rows), "model_run_id": current.run_id}
