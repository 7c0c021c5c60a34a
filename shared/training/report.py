"""The run report: one self-contained HTML page (inline SVG, no scripts, no network).

What a pricing analyst reads before signing: the recommended moves ranked by expected weekly
gain with its 90% interval and the rule that bounds each; the products held and why (counted
by reason); the elasticity distribution; per category, the elasticity under the job's
specification beside the plain log-log one; expected-profit curves of the largest moves; and
the promotion model's holdout accuracy next to the naive forecast; and the store prices: the
chain's gain over one chain price and a section per zone.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from shared.training.pricing.store_prices import StorePrices

W, H, PAD = 420, 220, 36


def _scale(
    values: Sequence[float] | np.ndarray, lo: float, hi: float, out_lo: float, out_hi: float
) -> list:
    span = (hi - lo) or 1.0
    return [out_lo + (v - lo) / span * (out_hi - out_lo) for v in values]


def histogram_svg(values: Sequence[float], bins: int = 20, label: str = "") -> str:
    if not values:
        return "<p>No estimates.</p>"
    counts, edges = np.histogram(values, bins=bins)
    top = max(counts.max(), 1)
    bar_w = (W - 2 * PAD) / bins
    bars = []
    for i, c in enumerate(counts):
        h = (H - 2 * PAD) * c / top
        x = PAD + i * bar_w
        bars.append(
            f'<rect x="{x:.1f}" y="{H - PAD - h:.1f}" width="{bar_w - 1:.1f}" height="{h:.1f}" '
            f'fill="#4a7ab5"><title>{edges[i]:.2f} to {edges[i + 1]:.2f}: {c}</title></rect>'
        )
    ticks = "".join(
        f'<text x="{x:.1f}" y="{H - PAD + 14}" font-size="10" text-anchor="middle">{v:.1f}</text>'
        for x, v in zip(
            _scale(edges[:: max(1, bins // 5)], edges[0], edges[-1], PAD, W - PAD),
            edges[:: max(1, bins // 5)],
            strict=True,
        )
    )
    return (
        f'<svg width="{W}" height="{H}" role="img" aria-label="{html.escape(label)}">'
        f"{''.join(bars)}{ticks}"
        f'<text x="{W / 2}" y="{H - 4}" font-size="11" text-anchor="middle">'
        f"{html.escape(label)}</text></svg>"
    )


def value_curve_svg(
    regular: float, elasticity: float, recommended: float, cost: float, title: str
) -> str:
    """Expected weekly profit (revenue when ``cost`` is 0) relative to today's, for prices
    from -30% to +30% of the regular price."""
    prices = np.linspace(regular * 0.7, regular * 1.3, 61)
    value = (prices - cost) * (prices / regular) ** elasticity / max(regular - cost, 1e-9)
    xs = _scale(prices, prices[0], prices[-1], PAD, W - PAD)
    lo, hi = float(value.min()), float(value.max())
    ys = _scale(value, lo, hi, H - PAD, PAD)
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))

    def marker(price: float, colour: str, name: str) -> str:
        x = _scale([price], prices[0], prices[-1], PAD, W - PAD)[0]
        return (
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{PAD}" y2="{H - PAD}" stroke="{colour}" '
            f'stroke-dasharray="4 3"/><text x="{x + 3:.1f}" y="{PAD + 10}" font-size="10" '
            f'fill="{colour}">{name} {price:.2f}</text>'
        )

    return (
        f'<svg width="{W}" height="{H}" role="img" aria-label="{html.escape(title)}">'
        f'<polyline fill="none" stroke="#333" stroke-width="2" points="{path}"/>'
        f"{marker(regular, '#888', 'regular')}{marker(recommended, '#c0392b', 'recommended')}"
        f'<text x="{PAD}" y="16" font-size="12">{html.escape(title)}</text>'
        f'<text x="{W / 2}" y="{H - 4}" font-size="11" text-anchor="middle">price</text></svg>'
    )


def _cell(value: object) -> str:
    return f"<td>{html.escape(str(value))}</td>"


def _moves_table(moves: list[dict]) -> str:
    rows = "".join(
        "<tr>"
        + _cell(p.get("rank") or "")
        + _cell(p["product_id"])
        + _cell(p.get("category") or "")
        + _cell(f"{p['regular_price']:.2f} -> {p['recommended_price']:.2f}")
        + _cell(f"{p['recommended_price'] / p['regular_price'] - 1:+.1%}")
        + _cell(f"{p['expected_gain']:+,.2f} [{p['gain_low']:+,.2f}, {p['gain_high']:+,.2f}]")
        + _cell(f"{p['elasticity']:.2f} [{p['ci_low']:.2f}, {p['ci_high']:.2f}]")
        + _cell(p.get("binding_rule") or "-")
        + "</tr>"
        for p in moves
    )
    return (
        "<table><tr><th>rank</th><th>product</th><th>category</th><th>regular price</th>"
        "<th>change</th><th>expected weekly gain [90%]</th><th>elasticity [95%]</th>"
        f"<th>bounded by</th></tr>{rows}</table>"
    )


def _specification_table(ok: list[dict]) -> str:
    by_category: dict[str, list[dict]] = {}
    for p in ok:
        if p.get("elasticity_plain") is not None:
            by_category.setdefault(p.get("category") or "(none)", []).append(p)
    rows = "".join(
        "<tr>"
        + _cell(name)
        + _cell(len(items))
        + _cell(f"{np.median([p['elasticity'] for p in items]):+.2f}")
        + _cell(f"{np.median([p['elasticity_plain'] for p in items]):+.2f}")
        + "</tr>"
        for name, items in sorted(by_category.items())
    )
    return (
        "<table><tr><th>category</th><th>products</th><th>job's specification (median)</th>"
        f"<th>plain log-log (median)</th></tr>{rows}</table>"
    )


def _substitutes_section(groups: list[dict]) -> str:
    if not groups:
        return ""
    parts = []
    for g in groups:
        names = [str(p) for p in g["products"]]
        head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
        rows = ""
        for i, name in enumerate(names):
            cells = "".join(
                _cell(
                    "-"
                    if (g["own"][i] if i == j else g["cross"][i][j]) is None
                    else f"{(g['own'][i] if i == j else g['cross'][i][j]):+.2f}"
                )
                for j in range(len(names))
            )
            prices = ""
            if g.get("joint_prices"):
                prices = (
                    _cell(f"{g['regular'][i]:.2f}")
                    + _cell(f"{g['independent_prices'][i]:.2f}")
                    + _cell(f"{g['joint_prices'][i]:.2f}")
                )
            rows += f"<tr><th>{html.escape(name)}</th>{cells}{prices}</tr>"
        gains = ""
        if g.get("gain_joint") is not None:
            gains = (
                f"<p>Expected category profit a week: one by one {g['gain_independent']:+,.2f}, "
                f"jointly {g['gain_joint']:+,.2f} [{g['gain_low']:+,.2f}, "
                f"{g['gain_high']:+,.2f}]: <b>{html.escape(g['decision'])}</b> "
                f"({html.escape(g['reason'])}).</p>"
            )
        parts.append(
            f"<h3>{html.escape(g['category'])}</h3><table><tr><th>units of \\ price of</th>"
            f"{head}<th>regular</th><th>one by one</th><th>jointly</th></tr>{rows}</table>{gains}"
        )
    return (
        "<h2>Substitutes: top products of each category priced together</h2>"
        "<p>Own (diagonal) and cross-price elasticities: row i, column j is the effect of j's "
        "price on i's units (positive: substitutes).</p>" + "".join(parts)
    )


def _stores_section(stores: StorePrices | None) -> str:
    """Store prices: the method, the chain's gain over one chain price, a section per zone
    (zones are numbered by price within a product, 1 the lowest) and the stores held back."""
    if stores is None or not stores.rows:
        return ""
    s = stores.summary
    mean, low, high = s["store_vs_chain"]
    level = f"{s['confidence']:.0%}"
    codes = Counter(r["reason_code"] for r in stores.rows)
    parts = [
        "<h2>Store prices</h2>",
        f"<p>{html.escape(s.get('method', ''))}: store effects spread by "
        f"{s.get('tau_store', 0):.2f} (covariates explain {s.get('explained', 0):.0%}); "
        f"{s['products_with_zones']} of {s['products_priced']} products priced by zone, "
        f"{s['moves']} store prices change, valid from {html.escape(s.get('valid_from', '-'))}. "
        f"Expected weekly profit of store prices over one chain price: {mean:+,.2f} "
        f"({level} interval [{low:+,.2f}, {high:+,.2f}]).</p>",
        "<p>Store x product prices by reason: "
        + ", ".join(f"{html.escape(c)} {n}" for c, n in codes.most_common())
        + "</p>",
    ]
    by_zone: dict[int, list[dict]] = {}
    for z in stores.zones:
        by_zone.setdefault(z["zone"], []).append(z)
    for zone, members in sorted(by_zone.items()):
        rows = [r for r in stores.rows if r["zone"] == zone]
        moves = sorted(rows, key=lambda r: -(r["expected_gain"] or 0))[:5]
        table = "".join(
            f"<tr><td>{r['store_id']}</td><td>{r['product_id']}</td>"
            f"<td>{r['current_price']:.2f}</td><td>{r['recommended_price']:.2f}</td>"
            f"<td>{r['elasticity']:+.2f} [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]</td>"
            f"<td>{r['expected_gain']:+,.2f}</td></tr>"
            for r in moves
        )
        gain = sum(z["expected_gain"] for z in members)
        parts.append(
            f"<h3>Zone {zone}</h3><p>{len(members)} products, {len(rows)} store x product "
            f"prices, expected weekly profit {gain:+,.2f}.</p><table><tr><th>store</th>"
            "<th>product</th><th>current</th><th>price</th><th>store elasticity (95%)</th>"
            f"<th>gain a week</th></tr>{table}</table>"
        )
    return "\n".join(parts)


def _method(name: str) -> str:
    """The estimator, in words, from a specification's name (the rows carry the name)."""
    from shared.training.pricing import Spec

    if not name:
        return "method not recorded"
    controls = () if name.startswith("plain") else tuple(name.split(", ")[0].split("+"))
    try:
        return Spec.model_validate({"controls": controls}).method
    except ValueError:
        return name


def render(
    run_id: str,
    pricing: list[dict],
    promotion_scores: dict | None,
    substitutes: list[dict] | None = None,
    stores: StorePrices | None = None,
    top: int = 6,
) -> str:
    """The report page for one training run."""
    ok = [p for p in pricing if p["status"] == "ok"]
    flagged = [p for p in pricing if p["status"] != "ok"]
    moves = sorted(
        (p for p in ok if p.get("decision") == "move"), key=lambda p: -p["expected_gain"]
    )
    held = Counter(p.get("reason_code") or "-" for p in ok if p.get("decision") != "move")
    curves = "".join(
        value_curve_svg(
            p["regular_price"],
            p["elasticity"],
            p["recommended_price"],
            (p.get("unit_cost") or 0.0) if p.get("objective") == "profit" else 0.0,
            f"product {p['product_id']}: {p['objective']} {p['expected_gain']:+,.2f}/week "
            f"[{p['gain_low']:+,.2f}, {p['gain_high']:+,.2f}]",
        )
        for p in moves[:top]
    )
    flags = "".join(
        f"<tr><td>{p['product_id']}</td><td>{html.escape(p['status'])}</td>"
        f"<td>{html.escape(p.get('reason') or '')}</td></tr>"
        for p in flagged
    )
    examples: dict[str, str] = {}
    for p in ok:
        if p.get("decision") != "move":
            examples.setdefault(p.get("reason_code") or "-", p.get("reason") or "")
    holds = "".join(
        f"<tr><td>{html.escape(code)}</td><td>{n}</td><td>{html.escape(examples[code])}</td></tr>"
        for code, n in held.most_common()
    )
    promo = "<p>No promotion model in this run.</p>"
    if promotion_scores:
        s = promotion_scores
        promo = (
            "<table><tr><th></th><th>WAPE</th><th>MAPE</th></tr>"
            f"<tr><td>model</td><td>{s['model_wape']:.3f}</td><td>{s['model_mape']:.3f}</td></tr>"
            f"<tr><td>naive (product's average uplift)</td><td>{s['naive_wape']:.3f}</td>"
            f"<td>{s['naive_mape']:.3f}</td></tr></table>"
            f"<p>{s['holdout_promotions']:.0f} promotions in the time-based holdout.</p>"
        )
    pricing_section = ""
    if pricing:
        counts = (
            f"{len(ok)} products with an elasticity estimate, {len(flagged)} not estimated; "
            f"{len(moves)} price moves recommended (their 90% interval of the weekly gain "
            f"excludes zero), {sum(held.values())} held."
        )
        weak = Counter(
            (p.get("identification") or "").split(" (<")[0].split(": ")[0]
            for p in flagged
            if p["status"] == "weakly_identified"
        )
        checks = "".join(
            f"<li>{html.escape(text)}: {n} products</li>" for text, n in weak.most_common(6)
        )
        sensitive = held.get("specification_sensitive", 0)
        name = html.escape(next((p.get("method") or "" for p in pricing), ""))
        pricing_section = f"""<p>{counts}</p>
<h2>Method and checks</h2>
<p>{html.escape(_method(name))}. Specification: {name}. Each elasticity is pulled toward a
prior (the job's <code>prior</code>, from a meta-analysis of published elasticities) by its own
noise before a price is chosen; gains carry the
elasticity's, the volume's and an assumed cost's uncertainty, the price chosen on half the
draws and its gain scored on the other half. A move is made only when the alternative
specification (regular-price weeks only) points the same way: {sensitive} held where it did
not.</p>
<p>Not identified, by check:</p><ul>{checks or "<li>none</li>"}</ul>
<h2>Recommended moves, by expected weekly gain</h2>
{_moves_table(moves)}
<h2>Held, by reason</h2>
<table><tr><th>reason</th><th>products</th><th>example</th></tr>{holds}</table>
<h2>Own-price elasticity</h2>
{histogram_svg([p["elasticity"] for p in ok], label="estimated elasticity")}
<h2>Specification: what the controls do</h2>
<p>Median elasticity per category under the job's specification and under the plain
log-log model (log units on log price only).</p>
{_specification_table(ok)}
<h2>Expected value against price, largest moves</h2>
<p>Relative to the value at the regular price; the recommended price is marked.</p>
{curves}
{_substitutes_section(substitutes or [])}
{_stores_section(stores)}
<h2>Not estimated</h2>
<table><tr><th>product</th><th>status</th><th>why</th></tr>{flags}</table>
"""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Training run {html.escape(run_id)}</title>
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto}}
svg{{border:1px solid #ddd;margin:4px}}td,th{{padding:2px 10px;text-align:left}}</style>
</head><body>
<h1>Training run {html.escape(run_id)}</h1>
{pricing_section}<h2>Promotion model accuracy</h2>
{promo}
</body></html>
"""
