"""Promotions: what a planned promotion would bring, and how past promotions performed."""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue
from google.api_core import exceptions as gexc

from shared.api.analytics import Filters, PromotionAnalytics
from shared.api.http import ApiError, failed, json_body, query, validated
from shared.api.models import ModelStore
from shared.api.openapi import Routes, operation
from shared.api.schemas import (
    MAX_BATCH,
    MAX_BODY_BYTES,
    AnalyticsPage,
    AnalyticsQuery,
    BatchIn,
    Page,
    Prediction,
    PredictionBatch,
    PromotionIn,
)


def routes(store: ModelStore, analytics: PromotionAnalytics | None) -> Routes:
    """The promotion endpoints: the store's promotion model, and ``analytics`` when set."""
    served = Routes(Blueprint("promotions", __name__))

    @operation(
        served,
        "post",
        "/v1/promotions:predict",
        "Predicted revenue of a planned promotion, or of each of a batch",
        {
            200: (
                "the prediction (or one per promotion of a batch)",
                [Prediction, PredictionBatch],
            ),
            404: failed("a product without recent sales"),
            413: failed(f"body over {MAX_BODY_BYTES} bytes or batch over {MAX_BATCH} promotions"),
            415: failed("a body that is not application/json"),
            503: failed("no promotion model yet"),
        },
        body=(PromotionIn, BatchIn),
    )
    def predict_promotions() -> ResponseReturnValue:
        raw, body = json_body(request)
        listed = body.get("promotions") if isinstance(body, dict) else None
        batch = isinstance(body, dict) and "promotions" in body
        if isinstance(listed, list) and len(listed) > MAX_BATCH:
            raise ApiError(413, f"at most {MAX_BATCH} promotions per request", "promotions")
        items = validated(BatchIn, raw).promotions if batch else [validated(PromotionIn, raw)]
        if store.promotions is None:
            store.catch_up()
        loaded = store.promotions
        if loaded is None:
            raise ApiError(503, f"no promotion model: {store.not_ready_reason()}")
        for i, item in enumerate(items):
            if item.product_id not in loaded.model.baselines:
                field = f"promotions[{i}].product_id" if batch else "product_id"
                raise ApiError(404, f"no recent sales of product {item.product_id}", field)
        plans = [item.planned() for item in items]
        answers = [
            {"product_id": item.product_id, **answer, "model_run_id": loaded.run_id}
            for item, answer in zip(items, loaded.model.plan(plans), strict=True)
        ]
        if not batch:
            return jsonify(answers[0])
        return jsonify({"predictions": answers, "model_run_id": loaded.run_id})

    @operation(
        served,
        "get",
        "/v1/promotions/analytics",
        "Past promotions' realised performance, newest first",
        {
            200: ("a page of past promotions, newest first", AnalyticsPage),
            503: failed("analytics not configured"),
        },
        query=AnalyticsQuery,
    )
    def promotion_analytics() -> ResponseReturnValue:
        asked = query(AnalyticsQuery, request)
        filters = Filters(**asked.model_dump(exclude=set(Page.model_fields)))
        if analytics is None:
            raise ApiError(503, "promotion analytics is not configured")
        # end before start is an empty period (an empty page), not an error: the document
        # cannot state the rule, and nothing about such a request is malformed.
        if filters.start and filters.end and filters.start > filters.end:
            return jsonify({"items": [], "next_offset": None})
        try:
            items, more = analytics.page(filters, asked.limit, asked.offset)
        except gexc.NotFound:
            raise ApiError(
                503, "no promotion analytics yet: the promotion job has not written its table"
            ) from None
        next_offset = asked.offset + len(items) if more else None
        return jsonify({"items": items, "next_offset": next_offset})

    return served
