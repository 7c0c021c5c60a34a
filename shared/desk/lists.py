"""Price lists (store managers): a store's approved new prices as a page and a CSV download;
only approved (or overridden) moves that change today's price appear."""

from __future__ import annotations

import csv
import io

from flask import Blueprint, Response, abort, g, render_template
from flask.typing import ResponseReturnValue

from shared.api.models import ModelStore, PricingModel
from shared.desk.access import Grant
from shared.desk.decisions import DecisionLedger

COLUMNS = ("product_id", "category", "current_price", "new_price", "valid_from", "reason")


def add_routes(pages: Blueprint, store: ModelStore, ledger: DecisionLedger) -> None:
    """The price list pages on the desk's blueprint."""

    @pages.get("/stores/<int:store_id>")
    def price_list(store_id: int) -> ResponseReturnValue:
        rows, model = _price_list(store, ledger, store_id)
        return render_template("store.html", store_id=store_id, rows=rows, run_id=model.run_id)

    @pages.get("/stores/<int:store_id>.csv")
    def price_list_csv(store_id: int) -> ResponseReturnValue:
        rows, _ = _price_list(store, ledger, store_id)
        out = io.StringIO()
        writer = csv.DictWriter(out, COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        attachment = f"attachment; filename=store-{store_id}-prices.csv"
        return Response(out.getvalue(), mimetype="text/csv",
                        headers={"Content-Disposition": attachment})  # fmt: skip


def current_model(store: ModelStore) -> PricingModel:
    """The newest pricing run; 503 until one is loaded."""
    if store.pricing is None:
        store.catch_up()
    if store.pricing is None:
        abort(503, "no pricing run yet")
    return store.pricing


def _price_list(
    store: ModelStore, ledger: DecisionLedger, store_id: int
) -> tuple[list[dict], PricingModel]:
    """The store's approved new prices: a product approved (its store price) or overridden
    (the override), where it differs from today's."""
    grant: Grant = g.grant
    if not grant.sees_store(store_id):
        abort(403, f"store {store_id}'s price list is not yours to see")
    model = current_model(store)
    decided = ledger.of_run(model.run_id)
    rows = []
    for row in model.stores.get(store_id, []):
        decision = decided.get(str(row["product_id"]))
        if decision is None or decision.action == "reject":
            continue
        new = row["recommended_price"] if decision.action == "approve" else decision.price
        if new is None or abs(new - row["current_price"]) < 0.005:
            continue
        reason = row["reason"] if decision.action == "approve" else (
            f"override by {decision.decided_by}: {decision.note or 'no note'}")  # fmt: skip
        rows.append({**row, "new_price": new, "reason": reason})
    rows.sort(key=lambda r: r["product_id"])
    return rows, model
