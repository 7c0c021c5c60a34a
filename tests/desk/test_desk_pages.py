"""What each page shows: a product's history and zones, past promotions summed up as the
analytics API's rows add up, and the filters of both."""

import pytest

from .test_desk_grants import signed_in

pytestmark = pytest.mark.stack


def test_the_product_page_shows_its_weeks_and_its_store_zones(desk):
    client, _ = signed_in(desk, "paul@retail.example")
    page = client.get("/desk/prices/1").get_data(as_text=True)
    assert 'id="history"' in page and "<svg" in page
    # the week on promotion is marked and said so; the week without sales is a gap
    assert "week of 2026-11-09: 260 units at 1.99 (mostly on promotion)" in page
    assert "week of 2026-10-19" not in page.split('id="history-table"')[0]
    table = page.split('id="history-table"')[1].split("</table>")[0]
    assert table.count("<tr>") == 1 + 8 and "<td>2026-10-19</td><td>-</td>" in table
    assert "<td>1</td><td>2.19</td><td>1</td><td>+12.50</td>" in page  # zone 1: store 1
    # a product without a history says so rather than drawing nothing
    page = client.get("/desk/prices/2").get_data(as_text=True)
    assert "No sales in the weeks the run read." in page and "Store zones" not in page


def test_past_promotions_add_up_to_the_rows_the_analytics_api_serves(desk, analytics_tables):
    _, _, perf = analytics_tables
    rows = perf.to_pylist()
    client, _ = signed_in(desk, "maria@retail.example")  # an analyst: every category
    page = client.get("/desk/promotions/past").get_data(as_text=True)
    assert f"<dt>Promotions</dt><dd>{len(rows):,}</dd>" in page
    for mechanic in {r["mechanic"] for r in rows}:
        mine = [r for r in rows if r["mechanic"] == mechanic]
        uplift = sum(r["revenue"] for r in mine) / sum(r["baseline_revenue"] for r in mine)
        assert f"{mechanic}: {uplift:.2f}x over {len(mine)} promotions" in page
    predicted = [r for r in rows if r["predicted_revenue"] is not None]
    assert page.count("<circle") == min(len(predicted), 400)
    # filtered like the API: one mechanic, one period
    page = client.get("/desk/promotions/past?mechanic=bogo").get_data(as_text=True)
    bogo = [r for r in rows if r["mechanic"] == "bogo"]
    assert f"<dt>Promotions</dt><dd>{len(bogo):,}</dd>" in page
    refused = client.get("/desk/promotions/past?start=2024-13-01")
    assert refused.status_code == 400 and "start" in refused.get_data(as_text=True)


def test_a_category_manager_sees_past_promotions_of_their_categories_only(desk, analytics_tables):
    _, _, perf = analytics_tables
    dairy = [r for r in perf.to_pylist() if r["category"] == "dairy"]
    client, _ = signed_in(desk, "paul@retail.example")
    page = client.get("/desk/promotions/past").get_data(as_text=True)
    assert f"<dt>Promotions</dt><dd>{len(dairy):,}</dd>" in page  # his category by default
    assert client.get("/desk/promotions/past?category=bakery").status_code == 403
    store_manager, _ = signed_in(desk, "sam@retail.example")
    assert store_manager.get("/desk/promotions/past").status_code == 403


def test_the_review_filters_by_store_and_by_store_prices(desk):
    client, _ = signed_in(desk, "paul@retail.example")
    page = client.get("/desk/prices?zoned=yes").get_data(as_text=True)
    assert 'id="product-1"' in page and 'id="product-2"' not in page  # only 1 has zones
    assert '<td class="at-store">1 zone</td>' in page
    page = client.get("/desk/prices?zoned=no").get_data(as_text=True)
    assert 'id="product-1"' not in page and 'id="product-2"' in page
    page = client.get("/desk/prices?store=2").get_data(as_text=True)
    assert "At store 2" in page and '<td class="at-store">2.49 to 2.29, zone 1</td>' in page
    assert 'id="product-4"' not in page  # bakery stays his colleague's at every store
    assert client.get("/desk/prices?store=9").status_code == 404
    assert client.get("/desk/prices?store=x").status_code == 400
