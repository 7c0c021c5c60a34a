"""The run report is one self-contained HTML page with the charts and tables it promises."""

from html.parser import HTMLParser

from shared.training.report import render


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)


def test_report_has_histogram_curves_flags_and_scores():
    pricing = [
        {
            "product_id": i,
            "status": "ok",
            "category": "dairy" if i % 2 else "bakery",
            "elasticity": -2.0 - i / 10,
            "elasticity_plain": -1.5 - i / 10,
            "ci_low": -2.5,
            "ci_high": -1.5,
            "regular_price": 2.0,
            "unit_cost": 1.0,
            "objective": "profit",
            "decision": "move" if i < 5 else "hold",
            "reason_code": "move" if i < 5 else "gain_uncertain",
            "reason": "ok" if i < 5 else "90% interval of the weekly profit change is [-1, +2]",
            "recommended_price": 1.8 if i < 5 else 2.0,
            "expected_gain": 10.0 + i,
            "gain_low": 2.0,
            "gain_high": 20.0,
            "binding_rule": "corridor" if i == 0 else None,
            "rank": 5 - i if i < 5 else None,
            "n_cells": 100 - i,
        }
        for i in range(8)
    ] + [
        {
            "product_id": 99,
            "status": "insufficient_price_variation",
            "reason": "log price varies by 0.001 inside stores",
        }
    ]
    scores = {
        "model_wape": 0.26,
        "naive_wape": 0.42,
        "model_mape": 0.38,
        "naive_mape": 0.5,
        "holdout_promotions": 47,
    }
    page = render("run<1>", pricing, scores, top=3)
    parser = Tags()
    parser.feed(page)
    assert parser.tags.count("svg") == 1 + 3  # histogram + three curves
    assert "<script" not in page and "http" not in page.replace("http-equiv", "")
    assert "run&lt;1&gt;" in page and "run<1>" not in page  # escaped
    assert "insufficient_price_variation" in page and "0.260" in page and "0.420" in page
    assert "recommended 1.80" in page
    # ranked by expected gain, with the interval, the bounding rule and the held reasons
    assert page.index(">1</td><td>4<") < page.index(">5</td><td>0<")
    assert "+14.00 [+2.00, +20.00]" in page and "corridor" in page
    assert "gain_uncertain</td><td>3</td>" in page
    assert "plain log-log" in page
    assert "<td>bakery</td><td>4</td><td>-2.30</td><td>-1.80</td>" in page  # default | plain
