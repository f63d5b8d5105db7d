"""One headless Chromium (Debian's chromium + chromium-driver, through Selenium) per browser test module."""

from __future__ import annotations

import shutil
import tempfile

import pytest

from tests.support import require
from tests.support.browser import CHROMIUM_FLAGS


@pytest.fixture(scope="module")
def browser():
    require(shutil.which("chromium") is not None, "chromium is not installed (scripts/setup.sh)")
    require(shutil.which("chromedriver") is not None, "chromium-driver is not installed (scripts/setup.sh)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="sharedfs-chromium-")  # a fresh profile: no state from elsewhere
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)
