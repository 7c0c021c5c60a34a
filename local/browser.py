"""Debian's Chromium, headless, driven through its chromedriver (Selenium): for the desk's
browser tests and the demo's screenshots. Both come from ``make browser`` (apt-get)."""

from __future__ import annotations

import shutil
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


def save_page(driver: Any, path: str, width: int = 1280, most: int = 5000) -> None:
    """A screenshot of the whole page (up to ``most`` pixels tall), not only the window."""
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    before = driver.get_window_size()
    driver.set_window_size(width, min(max(height, 600), most))
    try:
        driver.save_screenshot(path)
    finally:
        driver.set_window_size(before["width"], before["height"])
