"""Past promotions (analysts; category managers for their categories): what promotions
brought, summed by mechanic, category and month of start, and what the model predicted for
each before it ran against what it realised; filtered like the analytics API
(``/v1/promotions/analytics``: product, category, store, mechanic, period), from the same
table (``PromotionAnalytics``)."""

from __future__ import annotations

import dataclasses

from flask import Blueprint, abort, g, render_template, request
from flask.typing import ResponseReturnValue
from google.api_core import exceptions as gexc
from markupsafe import Markup
from pydantic import ValidationError

from shared.api.analytics import Filters, PromotionAnalytics
from shared.api.http import describe
from shared.api.schemas import MECHANICS, AnalyticsQuery, Page
from shared.desk.access import ALL, Grant
from shared.desk.charts import bars_svg, scatter_svg

LISTED = 50  # the newest promotions listed under the charts


def add_routes(pages: Blueprint, analytics: PromotionAnalytics) -> None:
    """The past promotions page on the desk's blueprint."""

    @pages.get("/promotions/past")
    def past_promotions() -> ResponseReturnValue:
        grant: Grant = g.grant
        everything = grant.analyst or grant.reader or ALL in grant.categories
        if not (everything or grant.categories):
            abort(403, "past promotions are for analysts and category managers")
        asked = {k: v for k, v in request.args.items() if v != "" and k not in Page.model_fields}
        try:
            query = AnalyticsQuery.model_validate(asked)
        except ValidationError as exc:
            abort(400, f"the filters are not valid: {describe(exc)}")
        filters = Filters(**query.model_dump(exclude=set(Page.model_fields)))
        if not everything:
            mine = sorted(grant.categories)
            if filters.category is None:
                filters = dataclasses.replace(filters, category=mine[0])
            elif filters.category not in grant.categories:
                abort(403, f"promotions in {filters.category} are not yours to see")
        try:
            summary = analytics.summary(filters)
            listed, _ = analytics.page(filters, LISTED, 0)
        except gexc.NotFound:
            abort(503, "no past promotions yet: the promotion job has not written its table")
        charts = {
            name: Markup(bars_svg(summary[f"by_{name}"], f"uplift by {name}"))
            for name in ("mechanic", "category", "month")
        }
        scatter = scatter_svg(summary["points"], "realised against predicted revenue")
        return render_template("past.html", summary=summary, charts=charts,
                               scatter=Markup(scatter), listed=listed, filters=filters,
                               mechanics=MECHANICS, everything=everything,
                               categories=sorted(grant.categories - {ALL}))  # fmt: skip
