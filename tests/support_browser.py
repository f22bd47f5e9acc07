"""Headless Chromium for page tests: Debian's ``chromium`` + ``chromedriver`` driven by selenium (from PyPI).

Nothing is downloaded: the browser and its driver are the system's (``apt-get install chromium
chromium-driver``; ``.ci/run`` installs them), and selenium is pointed at them, so its own driver manager
never runs. Tests skip, saying why, only when no Chromium binary exists.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

__all__ = ["chromium", "CHROMIUM_FLAGS"]

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1200,1000",
)


def _find(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


def chromium():
    """A selenium Chrome driver on the system's Chromium with a fresh profile (the caller quits it)."""
    binary = _find("chromium", "chromium-browser", "google-chrome")
    if binary is None:
        pytest.skip("no Chromium binary on this machine (apt-get install chromium chromium-driver)")
    driver_path = _find("chromedriver")
    if driver_path is None:
        pytest.skip("Chromium is installed but chromedriver is not (apt-get install chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = Path(tempfile.mkdtemp(prefix="vixml-chromium-"))
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    return driver
