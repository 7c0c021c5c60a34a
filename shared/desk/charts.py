"""Charts for the desk, drawn on the server as inline SVG (no script, nothing from a CDN): the
expected weekly profit change over the prices a category's rules allow, with its 90% band."""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np

W, H, PAD = 640, 280, 48


def _svg(body: str, label: str, height: int = H) -> str:
    """``body`` as an accessible SVG ``W`` wide: an image named by ``label``."""
    name = html.escape(label)
    return (
        f'<svg viewBox="0 0 {W} {height}" width="100%" role="img" aria-label="{name}">'
        f"<title>{name}</title>{body}</svg>"
    )


def profit_curve(product: dict, prices: Sequence[float], draws: int = 2000) -> dict:
    """(prices, mean, low, high) of the weekly profit change against today's price, over
    joint draws of the elasticity (its estimate and standard error)."""
    regular, units = float(product["regular_price"]), float(product.get("weekly_units") or 0)
    cost = float(product.get("unit_cost") or 0) if product.get("objective") == "profit" else 0.0
    e, se = float(product["elasticity"]), float(product.get("std_error") or 0.0)
    rng = np.random.default_rng(int(product["product_id"]))
    elasticity = e + se * rng.standard_normal(draws)
    grid = np.asarray(prices, dtype=np.float64)
    value = (grid[:, None] - cost) * units * (grid[:, None] / regular) ** elasticity[None, :]
    change = value - (regular - cost) * units
    low, high = np.quantile(change, [0.05, 0.95], axis=1)
    return {"prices": grid, "mean": change.mean(axis=1), "low": low, "high": high}


def profit_svg(curve: dict, regular: float, recommended: float, label: str) -> str:
    """The curve as an accessible SVG: the mean line, the 90% band, today's and the
    recommended price marked."""
    prices, mean, low, high = curve["prices"], curve["mean"], curve["low"], curve["high"]
    if not len(prices):
        return "<p>No price is allowed by the rules.</p>"
    x_lo, x_hi = float(min(prices.min(), regular)), float(max(prices.max(), regular))
    y_lo, y_hi = float(min(low.min(), 0.0)), float(max(high.max(), 0.0))

    def x(v: float) -> float:
        return PAD + (v - x_lo) / ((x_hi - x_lo) or 1.0) * (W - 2 * PAD)

    def y(v: float) -> float:
        return H - PAD - (v - y_lo) / ((y_hi - y_lo) or 1.0) * (H - 2 * PAD)

    band = " ".join(f"{x(p):.1f},{y(v):.1f}" for p, v in zip(prices, high, strict=True))
    band += " " + " ".join(
        f"{x(p):.1f},{y(v):.1f}" for p, v in zip(prices[::-1], low[::-1], strict=True)
    )
    line = " ".join(f"{x(p):.1f},{y(v):.1f}" for p, v in zip(prices, mean, strict=True))
    points = "".join(
        f'<circle cx="{x(p):.1f}" cy="{y(v):.1f}" r="3" fill="#0b3d5c">'
        f"<title>{p:.2f}: {v:+,.2f} a week [{lo:+,.2f}, {hi:+,.2f}]</title></circle>"
        for p, v, lo, hi in zip(prices, mean, low, high, strict=True)
    )

    def mark(v: float, colour: str, name: str, row: int) -> str:
        line = (
            f'<line x1="{x(v):.1f}" x2="{x(v):.1f}" y1="{PAD}" y2="{H - PAD}" '
            f'stroke="{colour}" stroke-dasharray="4 3"/>'
        )
        anchor = "end" if x(v) > W - 2 * PAD else "start" if x(v) < 2 * PAD else "middle"
        text = (
            f'<text x="{x(v):.1f}" y="{PAD - 22 + 14 * row}" font-size="12" text-anchor="{anchor}">'
        )
        return f"{line}{text}{name} {v:.2f}</text>"

    ticks = "".join(
        f'<text x="{x(p):.1f}" y="{H - PAD + 16}" font-size="11" text-anchor="middle">'
        f"{p:.2f}</text>"
        for p in prices
    )
    zero = f'<line x1="{PAD}" x2="{W - PAD}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#555"/>'
    return _svg(
        f'<polygon points="{band}" fill="#9ec3e6" opacity="0.6"/>{zero}'
        f'<polyline points="{line}" fill="none" stroke="#0b3d5c" stroke-width="2"/>{points}'
        f"{mark(regular, '#555', 'today', 0)}"
        f"{mark(recommended, '#0a5c1f', 'recommended', 1)}{ticks}"
        f'<text x="{PAD}" y="{H - 6}" font-size="12">{html.escape(label)}</text>',
        label,
    )


def history_svg(weeks: Sequence[dict], label: str) -> str:
    """A product's weeks as an accessible SVG: units sold as bars (promotion weeks darker)
    and the average price paid as a line on its own scale; a week without sales is a gap."""
    sold = [w for w in weeks if w.get("units") is not None]
    if not sold:
        return "<p>No sales in the weeks the run read.</p>"
    n = len(weeks)
    units_hi = max(float(w["units"]) for w in sold) or 1.0
    prices = [float(w["price"]) for w in sold if w.get("price") is not None]
    p_lo, p_hi = min(prices), max(prices)
    p_lo, p_hi = (p_lo * 0.95, p_hi * 1.05) if p_hi > p_lo else (p_lo * 0.9, p_hi * 1.1)
    step = (W - 2 * PAD) / n

    def y_units(v: float) -> float:
        return H - PAD - v / units_hi * (H - 2 * PAD)

    def y_price(v: float) -> float:
        return H - PAD - (v - p_lo) / (p_hi - p_lo) * (H - 2 * PAD)

    bars: list[str] = []
    segments: list[list[str]] = []
    current: list[str] = []
    for i, w in enumerate(weeks):
        if w.get("units") is None:
            if current:
                segments.append(current)
            current = []
            continue
        on_deal = (w.get("promo_share") or 0) >= 0.5
        top = y_units(float(w["units"]))
        price = "-" if w.get("price") is None else f"{w['price']:.2f}"
        bars.append(
            f'<rect x="{PAD + i * step:.1f}" y="{top:.1f}" width="{max(step - 1, 1):.1f}" '
            f'height="{H - PAD - top:.1f}" fill="{"#c2410c" if on_deal else "#9ec3e6"}">'
            f"<title>week of {w['week']}: {w['units']:,.0f} units at {price}"
            f"{' (mostly on promotion)' if on_deal else ''}</title></rect>"
        )
        if w.get("price") is not None:
            current.append(f"{PAD + (i + 0.5) * step:.1f},{y_price(float(w['price'])):.1f}")
    if current:
        segments.append(current)
    lines = "".join(
        f'<polyline points="{" ".join(s)}" fill="none" stroke="#0b3d5c" stroke-width="2"/>'
        for s in segments
    )
    axis = (
        f'<text x="{PAD - 6}" y="{PAD}" font-size="11" text-anchor="end">{units_hi:,.0f}</text>'
        f'<text x="{PAD - 6}" y="{H - PAD}" font-size="11" text-anchor="end">0</text>'
        f'<text x="{W - PAD + 6}" y="{PAD}" font-size="11">{p_hi:.2f}</text>'
        f'<text x="{W - PAD + 6}" y="{H - PAD}" font-size="11">{p_lo:.2f}</text>'
        f'<text x="{PAD}" y="{H - PAD + 16}" font-size="11">{weeks[0]["week"]}</text>'
        f'<text x="{W - PAD}" y="{H - PAD + 16}" font-size="11" text-anchor="end">'
        f"{weeks[-1]['week']}</text>"
    )
    return _svg(
        f"{''.join(bars)}{lines}{axis}"
        f'<text x="{PAD}" y="{H - 6}" font-size="12">units a week (bars, left; darker: mostly '
        f"on promotion), price paid (line, right)</text>",
        label,
    )


def bars_svg(rows: Sequence[dict], label: str) -> str:
    """Uplift (revenue over baseline revenue) per group as horizontal bars, the baseline (1x)
    marked; each bar says its value and how many promotions it sums."""
    rows = [r for r in rows if r.get("uplift") is not None]
    if not rows:
        return "<p>No promotions match.</p>"
    row_h, left = 22, 120
    height = PAD + row_h * len(rows)
    top = max(max(float(r["uplift"]) for r in rows), 1.0) * 1.1

    def x(v: float) -> float:
        return left + v / top * (W - left - PAD)

    bars = "".join(
        f'<text x="{left - 6}" y="{24 + i * row_h + 14}" font-size="12" text-anchor="end">'
        f"{html.escape(str(r['key']))}</text>"
        f'<rect x="{left}" y="{24 + i * row_h + 3}" width="{x(float(r["uplift"])) - left:.1f}" '
        f'height="{row_h - 6}" fill="#3b7dbf"><title>{html.escape(str(r["key"]))}: '
        f"{float(r['uplift']):.2f}x over {r['promotions']} promotions</title></rect>"
        f'<text x="{x(float(r["uplift"])) + 4:.1f}" y="{24 + i * row_h + 14}" font-size="11">'
        f"{float(r['uplift']):.2f}x ({r['promotions']})</text>"
        for i, r in enumerate(rows)
    )
    base = (
        f'<line x1="{x(1.0):.1f}" x2="{x(1.0):.1f}" y1="18" y2="{height - 20}" stroke="#555" '
        f'stroke-dasharray="4 3"/><text x="{x(1.0):.1f}" y="14" font-size="11" '
        f'text-anchor="middle">baseline 1x</text>'
    )
    return _svg(f"{base}{bars}", label, height)


def scatter_svg(points: Sequence[dict], label: str) -> str:
    """Realised against predicted revenue, one dot a promotion, on log scales with the line
    where the two are equal (above it: the promotion did better than predicted)."""
    pairs = [
        (float(p["predicted_revenue"]), float(p["revenue"]), p)
        for p in points
        if (p.get("predicted_revenue") or 0) > 0 and (p.get("revenue") or 0) > 0
    ]
    if not pairs:
        return "<p>No promotion had a prediction made before it ran.</p>"
    values = np.log10([v for a, b, _ in pairs for v in (a, b)])
    lo, hi = float(values.min()) - 0.05, float(values.max()) + 0.05

    def at(v: float, horizontal: bool) -> float:
        share = (np.log10(v) - lo) / (hi - lo)
        return PAD + share * (W - 2 * PAD) if horizontal else H - PAD - share * (H - 2 * PAD)

    dots = "".join(
        f'<circle cx="{at(a, True):.1f}" cy="{at(b, False):.1f}" r="3" fill="#0b3d5c" '
        f'opacity="0.7"><title>promotion {p["promo_id"]} ({html.escape(str(p["mechanic"]))}, '
        f"{p['start_date']}): predicted {a:,.0f}, realised {b:,.0f}</title></circle>"
        for a, b, p in pairs
    )
    ends = (10**lo, 10**hi)
    diagonal = (
        f'<line x1="{at(ends[0], True):.1f}" y1="{at(ends[0], False):.1f}" '
        f'x2="{at(ends[1], True):.1f}" y2="{at(ends[1], False):.1f}" stroke="#c2410c" '
        f'stroke-dasharray="5 4"/>'
    )
    axis = (
        f'<text x="{PAD}" y="{H - PAD + 16}" font-size="11">{ends[0]:,.0f}</text>'
        f'<text x="{W - PAD}" y="{H - PAD + 16}" font-size="11" text-anchor="end">'
        f"{ends[1]:,.0f}</text>"
        f'<text x="{W / 2:.0f}" y="{H - 6}" font-size="12" text-anchor="middle">predicted '
        f"revenue (log scale); up: realised; dashed: as predicted</text>"
    )
    return _svg(f"{diagonal}{dots}{axis}", label)
