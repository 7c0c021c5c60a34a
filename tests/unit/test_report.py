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
            "elasticity": -2.0 - i / 10,
            "ci_low": -2.5,
            "ci_high": -1.5,
            "current_price": 2.0,
            "recommended_price": 1.8,
            "expected_revenue_change": 0.1,
            "n_cells": 100 - i,
        }
        for i in range(8)
    ] + [{"product_id": 99, "status": "insufficient_price_variation"}]
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
