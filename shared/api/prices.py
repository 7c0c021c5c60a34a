"""Price recommendations: one product's, and pages of them."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from shared.api.http import ApiError, failed, query, validated
from shared.api.models import ModelStore
from shared.api.openapi import Routes, operation
from shared.api.schemas import PRICE_FIELDS, Price, PriceList, PricesQuery, ProductPath


def _price(row: dict, run_id: str) -> dict:
    return {**{k: row.get(k) for k in PRICE_FIELDS}, "model_run_id": run_id}


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

    @operation(
        served,
        "get",
        "/v1/prices/{product_id}",
        "The recommendation for one product",
        {200: ("recommendation", Price), 404: failed("unknown product"), 503: no_model},
        path_params=ProductPath,
    )
    def price(product_id: str) -> ResponseReturnValue:
        pid = validated(ProductPath, {"product_id": product_id}).product_id
        current = model()
        row = current.products.get(pid)
        if row is None:
            raise ApiError(404, f"unknown product {pid}", "product_id")
        return jsonify(_price(row, current.run_id))

    @operation(
        served,
        "get",
        "/v1/prices",
        "A page of recommendations (order=rank: the moves by expected gain, largest first)",
        {200: ("a page of recommendations", PriceList), 503: no_model},
        query=PricesQuery,
    )
    def prices() -> ResponseReturnValue:
        asked = query(PricesQuery, request)
        current = model()
        ids = sorted(current.products)
        if asked.decision:
            ids = [i for i in ids if current.products[i].get("decision") == asked.decision]
        if asked.order == "rank":
            ids.sort(key=lambda i: (current.products[i].get("rank") is None,
                                    current.products[i].get("rank") or 0, i))  # fmt: skip
        window = ids[asked.offset : asked.offset + asked.limit]
        page = [_price(current.products[i], current.run_id) for i in window]
        return jsonify({"items": page, "total": len(ids), "model_run_id": current.run_id})

    return served
