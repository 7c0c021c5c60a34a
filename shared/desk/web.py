"""The desk's pages: price review for category managers; the others on the same blueprint
(``lists``: store managers' price lists, ``planner`` and ``past``: analysts', ``runs``).

Server-rendered (Flask's Jinja templates in ``templates/``, one stylesheet in ``static/``, no
script needed to decide). Every request names its person (``Identity``: IAP's signed header,
or locally a development sign-in the production configuration refuses) and is checked against
their grant (``access.Grant``): nobody sees or decides outside it. Every form carries a CSRF
token bound to the session; a decision carries its own request id, so a double click or a
second tab is one decision (``decisions.DecisionLedger``).
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import (
    Blueprint,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from markupsafe import Markup
from pydantic import ValidationError

from shared.api.analytics import PromotionAnalytics
from shared.api.http import describe
from shared.api.models import ModelStore, PricingModel
from shared.desk.access import (
    IAP_CERTS,
    IAP_HEADER,
    Grant,
    IdentityError,
    KeyCache,
    verify_iap,
)
from shared.desk.charts import history_svg, profit_curve, profit_svg
from shared.desk.decisions import Decision, DecisionLedger
from shared.desk.lists import add_routes as add_lists
from shared.desk.lists import current_model
from shared.desk.past import add_routes as add_past
from shared.desk.planner import add_routes as add_planner
from shared.desk.runs import TrainingJobs
from shared.desk.runs import add_routes as add_runs
from shared.training.pricing import allowed_prices, rules_for


@dataclass(frozen=True)
class Identity:
    """Who a request is from: IAP's signed header (``audience``) or, on the local stack only,
    the development sign-in."""

    audience: str | None = None
    development: bool = False
    certs_url: str = IAP_CERTS
    keys: KeyCache = field(default_factory=KeyCache, compare=False)

    @classmethod
    def for_deployment(cls, *, local: bool, audience: str | None, development: bool) -> Identity:
        """The identity a deployment uses; development sign-in is refused off the local stack,
        and a deployment without it must name IAP's audience."""
        if development and not local:
            raise RuntimeError("the desk's development sign-in is refused outside the local stack")
        if not development and not audience:
            raise RuntimeError("the desk needs IAP's audience (RETAIL_DESK_IAP_AUDIENCE)")
        return cls(audience=audience, development=development)

    def who(self) -> str:
        if self.development:
            email = session.get("dev_email")
            if not email:
                raise IdentityError("not signed in")
            return str(email)
        assert self.audience is not None
        return verify_iap(request.headers.get(IAP_HEADER), self.audience,
                          certs_url=self.certs_url, request=self.keys)  # fmt: skip


@dataclass
class Desk:
    """What the desk serves from: the models, the decisions and who may do what."""

    store: ModelStore
    ledger: DecisionLedger
    identity: Identity
    grants: Callable[[], dict[str, Grant]]
    fetch_root: str | None = None  # where fetch runs write (the runs page); none: no page
    training: TrainingJobs | None = None  # the training jobs' executions on the runs page
    analytics: PromotionAnalytics | None = None  # past promotions; none: no page


def blueprint(desk: Desk) -> Blueprint:
    pages = Blueprint("desk", __name__, url_prefix="/desk", template_folder="templates",
                      static_folder="static")  # fmt: skip

    @pages.before_request
    def _identify() -> ResponseReturnValue | None:
        if request.endpoint in ("desk.sign_in", "desk.static"):
            return None
        try:
            email = desk.identity.who()
        except IdentityError as exc:
            if desk.identity.development:
                return redirect(url_for("desk.sign_in", next=request.path))
            abort(401, str(exc))
        grant = desk.grants().get(email.lower())
        if grant is None or not grant.anything:
            abort(403, f"{email} has no grant on the desk: ask to be added to a desk group")
        g.grant = grant
        if request.method == "POST":
            _check_csrf()
        return None

    @pages.errorhandler(401)
    @pages.errorhandler(403)
    @pages.errorhandler(404)
    @pages.errorhandler(409)
    @pages.errorhandler(400)
    @pages.errorhandler(503)
    def _refused(exc: Any) -> ResponseReturnValue:
        return render_template("refused.html", status=exc.code, reason=exc.description), exc.code

    @pages.route("/sign-in", methods=["GET", "POST"])
    def sign_in() -> ResponseReturnValue:
        if not desk.identity.development:
            abort(404)
        if request.method == "POST":
            _check_csrf()
            session["dev_email"] = request.form.get("email", "").strip().lower()
            target = request.form.get("next") or ""
            return redirect(target if target.startswith("/desk") else url_for("desk.home"))
        return render_template("sign_in.html", next=request.args.get("next", ""))

    @pages.get("/")
    def home() -> ResponseReturnValue:
        grant: Grant = g.grant
        if grant.categories or grant.reader:
            return redirect(url_for("desk.review"))
        if grant.stores:
            return redirect(url_for("desk.price_list", store_id=min(grant.stores)))
        if grant.analyst:
            return redirect(url_for("desk.planner"))
        abort(403, "nothing on the desk is open to you yet")

    @pages.get("/prices")
    def review() -> ResponseReturnValue:
        grant: Grant = g.grant
        if not (grant.categories or grant.reader):
            abort(403, "price review is for category managers (and readers)")
        model = current_model(desk.store)
        decided = desk.ledger.of_run(model.run_id)
        wanted = {k: request.args.get(k) or None
                  for k in ("category", "decision", "reason", "store", "zoned")}  # fmt: skip
        rows = [p for p in model.products.values() if grant.sees_category(p.get("category"))
                and p.get("status") == "ok"]  # fmt: skip
        categories = sorted({p.get("category") or "-" for p in rows})
        reasons = sorted({p.get("reason_code") or "-" for p in rows})
        for key, column in (("category", "category"), ("decision", "decision"),
                            ("reason", "reason_code")):  # fmt: skip
            if wanted[key]:
                rows = [p for p in rows if p.get(column) == wanted[key]]
        if wanted["zoned"] in ("yes", "no"):
            zoned = wanted["zoned"] == "yes"
            rows = [p for p in rows if bool(model.zones.get(p["product_id"])) == zoned]
        at_store = _store_filter(model, wanted["store"])
        if at_store is not None:
            rows = [p for p in rows if p["product_id"] in at_store]
        rows.sort(key=lambda p: (-(p.get("expected_gain") or 0), p["product_id"]))
        view = [_review_row(p, decided.get(str(p["product_id"])), grant, desk.store) for p in rows]
        before = desk.ledger.previous(model.run_id)
        for row in view:
            row["zones"] = len(model.zones.get(row["product_id"], []))
            row["at_store"] = at_store.get(row["product_id"]) if at_store is not None else None
            earlier = before[1].get(str(row["product_id"])) if before else None
            row["earlier"] = earlier
            # What changed: the recommendation now differs from the price decided last time.
            kept = earlier.price if earlier and earlier.price is not None else row["regular_price"]
            row["changed"] = earlier is not None and abs(row["recommended_price"] - kept) >= 0.005
        return render_template("review.html", run_id=model.run_id, rows=view, wanted=wanted,
                               earlier_run=before[0] if before else None,
                               categories=categories, reasons=reasons, grant=grant,
                               stores=sorted(model.stores),
                               request_id=secrets.token_hex(12))  # fmt: skip

    @pages.get("/prices/<int:product_id>")
    def product_page(product_id: int) -> ResponseReturnValue:
        grant: Grant = g.grant
        model = current_model(desk.store)
        product = model.products.get(product_id)
        if product is None or product.get("status") != "ok":
            abort(404, f"no estimated product {product_id} in run {model.run_id}")
        if not grant.sees_category(product.get("category")):
            abort(403, f"product {product_id} is in {product.get('category')}, not yours")
        allowed = _allowed(product, desk.store)
        curve = profit_curve(product, allowed)
        label = (f"weekly {product.get('objective') or 'profit'} change against today's price, "
                 "with its 90% band")  # fmt: skip
        chart = profit_svg(curve, float(product["regular_price"]),
                           float(product["recommended_price"]), label)  # fmt: skip
        weeks = model.history_of(product_id)
        past = history_svg(weeks, f"product {product_id}: units and price paid, week by week")
        decided = desk.ledger.of_run(model.run_id).get(str(product_id))
        row = _review_row(product, decided, grant, desk.store)
        return render_template("product.html", p=row, chart=Markup(chart), run_id=model.run_id,
                               history=Markup(past), weeks=weeks[-13:],
                               zones=model.zones.get(product_id, []),
                               request_id=secrets.token_hex(12))  # fmt: skip

    @pages.post("/prices/<int:product_id>/decision")
    def decide(product_id: int) -> ResponseReturnValue:
        model = current_model(desk.store)
        form = request.form
        asked = (form.get("action", ""), form.get("price", ""), form.get("note", ""))
        decision = _decision(model, product_id, *asked, form.get("request_id", ""), desk.store)
        found = desk.ledger.decide(decision)
        if not found.won:
            abort(409, f"{found.decision.decided_by} decided product {product_id} first: "
                       f"{found.decision.action} at {found.decision.price}")  # fmt: skip
        return _back()

    @pages.post("/prices/decisions")
    def decide_selection() -> ResponseReturnValue:
        """Approve or reject a selection: every product checked first (grant, input), then
        each decided; products someone else decided first are named, not overwritten."""
        model = current_model(desk.store)
        form = request.form
        action = form.get("action", "")
        if action not in ("approve", "reject"):
            abort(400, "action: a selection is approved or rejected (override one by one)")
        try:
            chosen = sorted({int(v) for v in form.getlist("product_id")})
        except ValueError:
            abort(400, "product_id: not a product")
        if not chosen:
            abort(400, "product_id: select at least one product")
        request_id = form.get("request_id", "")
        note = form.get("note", "")
        decisions = [
            _decision(model, pid, action, "", note, f"{request_id}-{pid}"[:64], desk.store)
            for pid in chosen
        ]
        lost = []
        for decision in decisions:
            found = desk.ledger.decide(decision)
            if not found.won:
                lost.append(f"{decision.product_id} ({found.decision.decided_by}: "
                            f"{found.decision.action})")  # fmt: skip
        if lost:
            flash(f"decided first by someone else: {', '.join(lost)}")
        flash(f"{len(decisions) - len(lost)} of {len(decisions)} products {action}d")
        return _back()

    add_lists(pages, desk.store, desk.ledger)
    add_planner(pages, desk.store)
    if desk.fetch_root:
        add_runs(pages, desk.store, desk.ledger.bucket.client, desk.fetch_root, desk.training)
    if desk.analytics is not None:
        add_past(pages, desk.analytics)

    @pages.app_context_processor
    def _page_context() -> dict[str, Any]:
        return {"csrf_token": _token(), "runs_page": bool(desk.fetch_root),
                "past_page": desk.analytics is not None}  # fmt: skip

    return pages


def _store_filter(model: PricingModel, asked: str | None) -> dict[int, dict] | None:
    """The asked store's row of each product it sells, by product; None when no store is
    asked."""
    if asked is None:
        return None
    try:
        store_id = int(asked)
    except ValueError:
        abort(400, f"store: {asked!r} is not a store")
    if store_id not in model.stores:
        abort(404, f"store {store_id} has no prices in run {model.run_id}")
    return {int(row["product_id"]): row for row in model.stores[store_id]}


def _back() -> ResponseReturnValue:
    back = request.form.get("back", "")
    return redirect(back if back.startswith("/desk/") else url_for("desk.review"))


def _decision(
    model: PricingModel,
    product_id: int,
    action: str,
    price_text: str,
    note: str,
    request_id: str,
    store: ModelStore,
) -> Decision:
    """The decision a form asks for, checked against the person's grant and the rules."""
    grant: Grant = g.grant
    product = model.products.get(product_id)
    if product is None or product.get("status") != "ok":
        abort(404, f"no estimated product {product_id} in run {model.run_id}")
    if not grant.decides(product.get("category")):
        abort(403, f"you do not decide prices in {product.get('category')} "
                   f"(product {product_id})")  # fmt: skip
    price: float | None = None
    if action == "approve":
        price = float(product["recommended_price"])
    elif action == "override":
        price = _allowed_price(product, price_text, store)
    try:
        return Decision(
            run_id=model.run_id, product_id=product_id, action=action,  # type: ignore[arg-type]
            price=price, note=note[:500], decided_by=grant.email,
            decided_at=dt.datetime.now(dt.UTC), request_id=request_id,
        )  # fmt: skip
    except ValidationError as exc:
        abort(400, describe(exc))


def _token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return str(session["csrf"])


def _check_csrf() -> None:
    given = request.form.get("csrf_token", "")
    if not given or not hmac.compare_digest(given, session.get("csrf", "")):
        abort(400, "the form's CSRF token is missing or stale: reload the page")


def _allowed(product: dict, store: ModelStore) -> list[float]:
    """The prices the category's rules allow for ``product`` (what an override may choose)."""
    rules = rules_for(current_model(store).rules, product.get("category"))
    regular = float(product["regular_price"])
    return [float(p) for p in allowed_prices(regular, rules, product.get("unit_cost"))]


def _allowed_price(product: dict, given: str, store: ModelStore) -> float:
    try:
        price = round(float(given), 2)
    except ValueError:
        abort(400, f"price: {given!r} is not a price")
    allowed = _allowed(product, store)
    if not any(abs(price - p) < 0.005 for p in allowed):
        abort(400, f"price: {price:.2f} is not allowed by the category's rules "
                   f"({', '.join(f'{p:.2f}' for p in allowed)})")  # fmt: skip
    return price


def _review_row(product: dict, decided: Decision | None, grant: Grant, store: ModelStore) -> dict:
    allowed = _allowed(product, store) if product.get("regular_price") else []
    return {**product, "decided": decided, "may_decide": grant.decides(product.get("category")),
            "allowed": allowed}  # fmt: skip
