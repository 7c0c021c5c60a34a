"""Every page of the desk against axe-core's WCAG 2.1 A and AA rules (labels, names, contrast,
structure), in Debian's Chromium, as the person who uses it sees it; and the review decided
with the keyboard alone."""

import pytest

from local.browser import accessibility_violations, follow, sign_in

from .conftest import write_runs

pytestmark = pytest.mark.stack

PAGES = [
    ("paul@retail.example", "/desk/prices"),
    ("paul@retail.example", "/desk/prices?store=2"),
    ("paul@retail.example", "/desk/prices/1"),
    ("sam@retail.example", "/desk/stores/1"),
    ("maria@retail.example", "/desk/promotions"),
    ("maria@retail.example", "/desk/promotions/past"),
    ("fin@retail.example", "/desk/runs"),
    ("sam@retail.example", "/desk/prices"),  # the refusal page
]


def test_every_page_keeps_wcag_2_1_aa(browser, served_desk, desk, settings):
    write_runs(settings, desk.config["TEST_FETCH_ROOT"])
    browser.delete_all_cookies()
    browser.get(f"{served_desk}/desk/sign-in")
    found = {"/desk/sign-in": accessibility_violations(browser)}
    for email, path in PAGES:
        sign_in(browser, served_desk, email)
        browser.get(f"{served_desk}{path}")
        found[f"{email} {path}"] = accessibility_violations(browser)
    assert {page: v for page, v in found.items() if v} == {}
    # The check can fail: an unlabelled field and grey-on-white text are named.
    browser.execute_script(
        "document.querySelector('main').insertAdjacentHTML('beforeend',"
        ' \'<input id="bare"><p style="color:#bbb">faint</p>\')'
    )
    assert {v["id"] for v in accessibility_violations(browser)} >= {"label", "color-contrast"}


def test_a_category_manager_decides_with_the_keyboard_alone(browser, served_desk):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    sign_in(browser, served_desk, "paul@retail.example")
    # Tab from the top of the page to product 1's approve button, then press Enter.
    target = browser.find_element(By.CSS_SELECTOR, "#product-1 button[value=approve]")
    browser.find_element(By.TAG_NAME, "body").click()
    for _ in range(80):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        if browser.switch_to.active_element == target:
            break
    assert browser.switch_to.active_element == target, "the approve button is not reachable"
    outline = browser.execute_script("return getComputedStyle(arguments[0]).outlineStyle", target)
    assert outline != "none"  # the focus is visible
    follow(browser, lambda: ActionChains(browser).send_keys(Keys.ENTER).perform())
    assert "approve at 2.29" in browser.find_element(By.ID, "product-1").text
