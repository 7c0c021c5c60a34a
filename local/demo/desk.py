"""The demo's visit to the desk: a category manager approves the top move over HTTP (signed in
through the local stack's development sign-in, groups read from the local Cloud Identity),
the store manager of store 1 downloads the store's price list, and Debian's Chromium, where it
is installed (``make browser``), takes screenshots of their pages, the approved product's,
past promotions (an analyst) and the runs (a reader)."""

from __future__ import annotations

import re
from pathlib import Path

import requests

from local.browser import installed


def _signed_in(base: str, email: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{base}/desk/sign-in", timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    if token is None:
        raise RuntimeError("the desk's sign-in page has no CSRF token")
    session.post(f"{base}/desk/sign-in", data={"email": email, "csrf_token": token.group(1)},
                 timeout=10).raise_for_status()  # fmt: skip
    return session


def visit(base: str, out_dir: Path) -> dict:
    """Approve the top recommended move as paul; read store 1's CSV as sam; screenshots."""
    paul = _signed_in(base, "paul@retail.example")
    page = paul.get(f"{base}/desk/prices", params={"decision": "move"}, timeout=30)
    page.raise_for_status()
    form = re.search(r'action="/desk/prices/(\d+)/decision".*?name="csrf_token" value="([^"]+)"'
                     r'.*?name="request_id" value="([^"]+)"', page.text, re.S)  # fmt: skip
    approved = None
    if form is not None:
        approved = int(form.group(1))
        fields = {"action": "approve", "csrf_token": form.group(2),
                  "request_id": form.group(3), "note": "the demo"}  # fmt: skip
        paul.post(f"{base}/desk/prices/{approved}/decision", data=fields, timeout=30)
    sam = _signed_in(base, "sam@retail.example")
    listed = sam.get(f"{base}/desk/stores/1.csv", timeout=30)
    listed.raise_for_status()
    lines = listed.text.strip().splitlines()[1:]
    shots = _screenshots(base, out_dir, approved) if installed() else []
    return {"approved": approved, "store_1_changes": len(lines), "screenshots": shots}


def _screenshots(base: str, out_dir: Path, product: int | None) -> list[str]:
    from selenium.webdriver.common.by import By

    from local.browser import chromium, save_page, sign_in

    driver = chromium(1280, 1000)
    out_dir.mkdir(parents=True, exist_ok=True)
    saved = []
    try:
        pages = [("paul@retail.example", "/desk/prices", "desk-review.png"),
                 ("sam@retail.example", "/desk/stores/1", "desk-store-1.png"),
                 ("maria@retail.example", "/desk/promotions/past", "desk-past-promotions.png"),
                 ("fin@retail.example", "/desk/runs", "desk-runs.png")]  # fmt: skip
        if product is not None:
            pages.append(("paul@retail.example", f"/desk/prices/{product}", "desk-product.png"))
        for email, path, name in pages:
            sign_in(driver, base, email)
            driver.get(f"{base}{path}")
            driver.find_element(By.TAG_NAME, "h1")
            if name == "desk-review.png":
                driver.save_screenshot(str(out_dir / name))  # the top of 100+ rows
            else:
                save_page(driver, str(out_dir / name))
            saved.append(str(out_dir / name))
    finally:
        driver.quit()
    return saved
