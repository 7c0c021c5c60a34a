"""Debian's Chromium, headless, driven through its chromedriver (Selenium): for the desk's
browser tests and the demo's screenshots. Both come from ``make browser`` (apt-get), with
axe-core (npm), the accessibility engine the desk's pages are checked with."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

# This machine's closed network refuses Chromium's background connections (updates, sync,
# QUIC), many at a time, unless they are switched off; as root it needs --no-sandbox.
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def installed() -> bool:
    return bool(shutil.which("chromedriver") and shutil.which("chromium"))


def chromium(width: int = 1280, height: int = 900) -> Any:
    """A headless Chromium at ``width`` x ``height``; the caller quits it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not installed():
        raise RuntimeError("Debian's chromium and chromium-driver are needed: run `make browser`")
    options = webdriver.ChromeOptions()
    options.binary_location = str(shutil.which("chromium"))
    for flag in (*FLAGS, f"--window-size={width},{height}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(str(shutil.which("chromedriver"))), options=options)


def follow(driver: Any, act: Any) -> None:
    """Do ``act`` (a click, back) and wait until the page it leads to has loaded."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page = driver.find_element(By.TAG_NAME, "html")

    def left(_: Any) -> bool:
        """The old page is gone: its element is stale, or (asked mid-navigation) Chromium no
        longer has its node at all ("does not belong to the document")."""
        try:
            page.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as exc:
            if "does not belong to the document" in str(exc):
                return True
            raise
        return False

    act()
    wait = WebDriverWait(driver, 10)
    wait.until(left)
    wait.until(lambda d: d.execute_script("return document.readyState") == "complete")


def sign_in(driver: Any, base: str, email: str) -> None:
    """Sign in to the desk at ``base`` as ``email`` through the local stack's development
    sign-in (the desk sends a signed-out visitor there), and wait for the page it leads to."""
    from selenium.webdriver.common.by import By

    driver.delete_all_cookies()
    driver.get(f"{base}/desk/")
    if "/desk/sign-in" not in driver.current_url:
        raise RuntimeError(
            f"the desk did not send a signed-out visitor to its sign-in: {driver.current_url}"
        )
    driver.find_element(By.ID, "email").send_keys(email)
    follow(driver, lambda: driver.find_element(By.ID, "sign-in").click())


def save_page(driver: Any, path: str, width: int = 1280, most: int = 5000) -> None:
    """A screenshot of the whole page (up to ``most`` pixels tall), not only the window."""
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    before = driver.get_window_size()
    driver.set_window_size(width, min(max(height, 600), most))
    try:
        driver.save_screenshot(path)
    finally:
        driver.set_window_size(before["width"], before["height"])


AXE = "axe-core@4.11.0"  # the accessibility engine (npm), for the desk's accessibility tests
AXE_DIR = Path(__file__).resolve().parent.parent / ".local" / "tools" / "axe-core"


def axe_source() -> str:
    """axe-core's script (``npm pack``-ed once into .local/tools; ``make browser`` does it)."""
    script = AXE_DIR / "package" / "axe.min.js"
    if not script.exists():
        if not shutil.which("npm"):
            raise RuntimeError(
                f"npm is needed once to fetch {AXE}: install it, or run make browser"
            )
        AXE_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "pack", AXE, "--silent"], cwd=AXE_DIR, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        (tarball,) = AXE_DIR.glob("axe-core-*.tgz")
        with tarfile.open(tarball) as tar:
            tar.extract("package/axe.min.js", AXE_DIR, filter="data")
    return script.read_text()


def accessibility_violations(driver: Any) -> list[dict]:
    """axe-core's WCAG 2.1 A and AA violations on the driver's page: each rule broken, with
    the elements breaking it."""
    driver.execute_script(axe_source())
    found = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']})"
        ".then(r => done(r.violations),"
        "      e => done([{id: 'axe-error', help: String(e), nodes: []}]));"
    )
    return [
        {"id": v["id"], "help": v.get("help"), "nodes": [n.get("target") for n in v["nodes"]][:5]}
        for v in found
    ]
