"""The promotion planner (analysts): plans kept in the session, up to ``MAX_PLANS``, each
priced by the newest promotion model, compared side by side.

Revenue comes with a 90% interval: the prediction times the spread of actual over predicted
revenue on the model's time-based holdout (``interval_low``/``interval_high`` of its scores;
a model trained before those were kept shows none). Units are the revenue at the promoted
price (today's regular price from the pricing run, less the discount).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, abort, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from pydantic import ValidationError

from shared.api.http import describe
from shared.api.models import ModelStore
from shared.api.schemas import MECHANICS, PromotionIn
from shared.desk.access import Grant

MAX_PLANS = 5


def add_routes(pages: Blueprint, store: ModelStore) -> None:
    """The planner's pages on the desk's blueprint."""

    @pages.get("/promotions")
    def planner() -> ResponseReturnValue:
        _analyst()
        plans = session.get("plans", [])
        return render_template("planner.html", plans=_priced(store, plans), mechanics=MECHANICS,
                               max_plans=MAX_PLANS, today=dt.date.today().isoformat())  # fmt: skip

    @pages.post("/promotions")
    def add_plan() -> ResponseReturnValue:
        _analyst()
        plans = list(session.get("plans", []))
        if request.form.get("clear"):
            session["plans"] = []
            return redirect(url_for("desk.planner"))
        if len(plans) >= MAX_PLANS:
            abort(400, f"at most {MAX_PLANS} plans side by side: clear them to start again")
        form = request.form
        try:
            plan = PromotionIn.model_validate(
                {"product_id": int(form.get("product_id", "0") or 0),
                 "mechanic": form.get("mechanic", ""),
                 "discount": float(form.get("discount", "0") or 0) / 100,
                 "start_date": dt.date.fromisoformat(form.get("start_date", "")),
                 "duration_days": int(form.get("duration_days", "7") or 0),
                 "feature": form.get("feature") == "on", "display": form.get("display") == "on"},
                strict=False,
            )  # fmt: skip
        except ValidationError as exc:
            abort(400, f"the plan is not valid: {describe(exc)}")
        except ValueError as exc:
            abort(400, f"the plan is not valid: {exc}")
        loaded = store.promotions
        if loaded is None or plan.product_id not in loaded.model.baselines:
            abort(400, f"product {plan.product_id} has no recent sales to plan a promotion on")
        plans.append(plan.model_dump(mode="json"))
        session["plans"] = plans
        return redirect(url_for("desk.planner"))


def _analyst() -> Grant:
    grant: Grant = g.grant
    if not (grant.analyst or grant.reader):
        abort(403, "the promotion planner is for promotion analysts")
    return grant


def _priced(store: ModelStore, plans: list[dict]) -> list[dict[str, Any]]:
    """Each plan with its predicted revenue, interval, baseline, uplift and units."""
    loaded = store.promotions
    if loaded is None or not plans:
        return [{**p, "predicted": None} for p in plans]
    model = loaded.model
    found = model.plan([PromotionIn.model_validate(p, strict=False).planned() for p in plans])
    low, high = model.scores.get("interval_low"), model.scores.get("interval_high")
    pricing = store.pricing
    out = []
    for plan, answer in zip(plans, found, strict=True):
        regular = None
        if pricing is not None:
            regular = (pricing.products.get(plan["product_id"]) or {}).get("regular_price")
        revenue = answer["predicted_revenue"]
        price = regular * (1 - plan["discount"]) if regular else None
        out.append({**plan, **answer, "predicted": revenue,
                    "low": revenue * low if low else None, "high": revenue * high if high else None,
                    "units": revenue / price if price else None,
                    "model_run_id": loaded.run_id})  # fmt: skip
    return out
