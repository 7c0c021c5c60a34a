"""The run report: one self-contained HTML page (inline SVG, no scripts, no network).

Elasticity distribution of the estimated products, revenue-vs-price curves of the top
products by revenue with the current and recommended prices marked, flagged products, and
the promotion model's holdout accuracy next to the naive forecast.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np

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


def revenue_curve_svg(current: float, elasticity: float, recommended: float, title: str) -> str:
    """Expected revenue relative to today's, for prices from -30% to +30%."""
    prices = np.linspace(current * 0.7, current * 1.3, 61)
    revenue = (prices / current) ** (1 + elasticity)
    xs = _scale(prices, prices[0], prices[-1], PAD, W - PAD)
    lo, hi = float(revenue.min()), float(revenue.max())
    ys = _scale(revenue, lo, hi, H - PAD, PAD)
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
        f"{marker(current, '#888', 'now')}{marker(recommended, '#c0392b', 'recommended')}"
        f'<text x="{PAD}" y="16" font-size="12">{html.escape(title)}</text>'
        f'<text x="{W / 2}" y="{H - 4}" font-size="11" text-anchor="middle">price</text></svg>'
    )


def render(run_id: str, pricing: list[dict], promotion_scores: dict | None, top: int = 6) -> str:
    """The report page for one training run."""
    ok = [p for p in pricing if p["status"] == "ok"]
    flagged = [p for p in pricing if p["status"] != "ok"]
    ranked = sorted(ok, key=lambda p: -(p.get("n_cells") or 0))[:top]
    curves = "".join(
        revenue_curve_svg(
            p["current_price"],
            p["elasticity"],
            p["recommended_price"],
            f"product {p['product_id']}: elasticity {p['elasticity']:.2f} "
            f"[{p['ci_low']:.2f}, {p['ci_high']:.2f}], {p['expected_revenue_change']:+.1%}",
        )
        for p in ranked
    )
    flags = "".join(
        f"<tr><td>{p['product_id']}</td><td>{html.escape(p['status'])}</td></tr>" for p in flagged
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
        counts = f"{len(ok)} products with an elasticity estimate, {len(flagged)} flagged."
        pricing_section = f"""<p>{counts}</p>
<h2>Own-price elasticity</h2>
{histogram_svg([p["elasticity"] for p in ok], label="estimated elasticity")}
<h2>Revenue against price, largest products</h2>
<p>Expected revenue relative to today's, with the recommended price inside the corridor.</p>
{curves}
<h2>Flagged products</h2>
<table><tr><th>product</th><th>why</th></tr>{flags}</table>
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
