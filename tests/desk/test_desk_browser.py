"""The desk in a real browser (Debian's Chromium, headless, through its chromedriver): a
category manager approves two moves and overrides one, the store manager finds them in the
store's CSV and cannot approve; screenshots of each page in .local/screenshots/."""

import urllib.request

import pytest

from local.browser import follow, save_page, sign_in

from .conftest import SHOTS, write_runs

pytestmark = pytest.mark.stack


def submit(driver, element_id):
    """Click a submitting button and wait for the page it leads to."""
    from selenium.webdriver.common.by import By

    follow(driver, lambda: driver.find_element(By.ID, element_id).click())


def fits_a_tablet(driver, name):
    """The page at a tablet's width (820 px, portrait) scrolls only down: wide tables scroll
    inside their own box. Saves a screenshot of it."""
    before = driver.get_window_size()
    driver.set_window_size(820, 1180)
    try:
        wide = driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        driver.save_screenshot(str(SHOTS / name))
    finally:
        driver.set_window_size(before["width"], before["height"])
    assert wide <= 0, f"{name}: the page is {wide} px wider than a tablet"


def test_approve_two_override_one_and_the_store_manager_gets_them(browser, served_desk):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    sign_in(browser, served_desk, "paul@retail.example")
    assert browser.current_url.endswith("/desk/prices")
    rows = browser.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert [r.get_attribute("id") for r in rows] == [f"product-{i}" for i in (1, 2, 5, 3)]
    browser.save_screenshot(str(SHOTS / "desk-review.png"))
    fits_a_tablet(browser, "desk-review-tablet.png")
    follow(browser, lambda: browser.find_element(By.LINK_TEXT, "2").click())
    curve = browser.find_element(By.CSS_SELECTOR, "#profit-curve svg")
    assert "90% band" in curve.get_attribute("aria-label")
    assert len(curve.find_elements(By.TAG_NAME, "circle")) == 3  # 3.29, 3.49, 3.79 allowed
    browser.save_screenshot(str(SHOTS / "desk-product.png"))
    follow(browser, browser.back)
    follow(browser, lambda: browser.find_element(By.LINK_TEXT, "1").click())
    weeks = browser.find_element(By.CSS_SELECTOR, "#history svg")
    assert len(weeks.find_elements(By.TAG_NAME, "rect")) == 7  # 8 weeks, one without sales
    save_page(browser, str(SHOTS / "desk-product-history.png"))
    follow(browser, browser.back)
    browser.find_element(By.ID, "select-1").click()
    browser.find_element(By.ID, "select-2").click()
    browser.find_element(By.ID, "bulk-note").send_keys("agreed with the buyer")
    submit(browser, "approve-selected")
    assert "2 of 2 products approved" in browser.find_element(By.CSS_SELECTOR, ".messages").text
    Select(browser.find_element(By.ID, "price-5")).select_by_visible_text("4.79")
    submit(browser, "override-5")
    decided = browser.find_element(By.ID, "product-5").text
    assert "override at 4.79" in decided and "by paul@retail.example" in decided
    assert "approve at 2.29" in browser.find_element(By.ID, "product-1").text
    browser.save_screenshot(str(SHOTS / "desk-review-decided.png"))

    sign_in(browser, served_desk, "sam@retail.example")
    assert browser.current_url.endswith("/desk/stores/1")
    listed = {r.get_attribute("id") for r in browser.find_elements(By.CSS_SELECTOR, "tbody tr")}
    assert listed == {"store-product-1", "store-product-2", "store-product-5"}
    browser.save_screenshot(str(SHOTS / "desk-store-1.png"))
    assert browser.find_elements(By.CSS_SELECTOR, "button[value=approve]") == []
    cookie = "; ".join(f"{c['name']}={c['value']}" for c in browser.get_cookies())
    href = browser.find_element(By.ID, "download").get_attribute("href")
    request = urllib.request.Request(href, headers={"Cookie": cookie})
    text = urllib.request.urlopen(request, timeout=10).read().decode()
    lines = text.strip().splitlines()
    assert lines[0] == "product_id,category,current_price,new_price,valid_from,reason"
    prices = {line.split(",")[0]: line.split(",")[3] for line in lines[1:]}
    assert prices == {"1": "2.29", "2": "3.79", "5": "4.79"}
    # The store manager cannot reach the review page nor decide.
    browser.get(f"{served_desk}/desk/prices")
    assert "403" in browser.find_element(By.TAG_NAME, "h1").text
    browser.save_screenshot(str(SHOTS / "desk-refused.png"))
    for name in ("desk-review.png", "desk-review-decided.png", "desk-store-1.png"):
        assert (SHOTS / name).stat().st_size > 10_000


def test_a_reader_sees_the_runs(browser, served_desk, desk, settings):
    from selenium.webdriver.common.by import By

    write_runs(settings, desk.config["TEST_FETCH_ROOT"])
    sign_in(browser, served_desk, "fin@retail.example")
    follow(browser, lambda: browser.find_element(By.LINK_TEXT, "Runs").click())
    states = {r.get_attribute("class") for r in browser.find_elements(By.CSS_SELECTOR, "tr.run")}
    assert states == {"run complete", "run failed", "run running"}
    save_page(browser, str(SHOTS / "desk-runs.png"))


def test_an_analyst_plans_two_promotions_and_compares_them(browser, served_desk):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    sign_in(browser, served_desk, "maria@retail.example")
    assert browser.current_url.endswith("/desk/promotions")
    for product, mechanic, depth, feature in ((1, "tpr", "20", True), (1, "bogo", "50", False)):
        field = browser.find_element(By.ID, "plan-product")
        field.clear()
        field.send_keys(str(product))
        Select(browser.find_element(By.ID, "plan-mechanic")).select_by_visible_text(mechanic)
        depth_field = browser.find_element(By.ID, "plan-discount")
        depth_field.clear()
        depth_field.send_keys(depth)
        if feature:
            browser.find_element(By.ID, "plan-feature").click()
        submit(browser, "add-plan")
    table = browser.find_element(By.ID, "plans")
    headers = [h.text for h in table.find_elements(By.CSS_SELECTOR, "thead th")]
    assert headers[1:] == ["Plan 1", "Plan 2"]
    revenue = [c.text for c in table.find_elements(By.CSS_SELECTOR, "td.revenue")]
    assert len(revenue) == 2 and all("[" in r and "]" in r for r in revenue)  # an interval each
    uplift = [float(c.text.lstrip("x")) for c in table.find_elements(By.CSS_SELECTOR, "td.uplift")]
    assert all(u > 1 for u in uplift) and uplift[0] != uplift[1]
    browser.save_screenshot(str(SHOTS / "desk-planner.png"))
    # ... and looks back at past promotions: every chart drawn, then only one mechanic
    follow(browser, lambda: browser.find_element(By.LINK_TEXT, "Past promotions").click())
    for chart in ("by-mechanic", "by-category", "by-month", "predicted-vs-realised"):
        assert browser.find_elements(By.CSS_SELECTOR, f"#{chart} svg"), chart
    everything = browser.find_element(By.ID, "past-summary").text
    save_page(browser, str(SHOTS / "desk-past-promotions.png"))
    fits_a_tablet(browser, "desk-past-promotions-tablet.png")
    Select(browser.find_element(By.ID, "f-mechanic")).select_by_visible_text("bogo")
    submit(browser, "apply-filters")
    assert "mechanic=bogo" in browser.current_url
    bars = browser.find_elements(By.CSS_SELECTOR, "#by-mechanic svg rect")
    assert len(bars) == 1 and browser.find_element(By.ID, "past-summary").text != everything
    # A store manager may not plan.
    sign_in(browser, served_desk, "sam@retail.example")
    browser.get(f"{served_desk}/desk/promotions")
    assert "403" in browser.find_element(By.TAG_NAME, "h1").text
