"""Headless Chromium for the dashboard's tests: flags, screenshots ($SHAREDFS_SCREENSHOTS), reading a live page."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1200,900"]  # fmt: skip

SHOTS = Path(os.environ.get("SHAREDFS_SCREENSHOTS") or tempfile.mkdtemp(prefix="sharedfs-shots-"))


def shot(driver, name: str) -> None:
    assert driver.save_screenshot(str(SHOTS / f"dashboard-{name}.png"))


def text_of(driver, css: str) -> str:
    """The element's text now; "" while it is absent or being replaced (the page redraws its rows live)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        found = driver.find_elements(By.CSS_SELECTOR, css)
        return found[0].text if found else ""
    except StaleElementReferenceException:
        return ""
