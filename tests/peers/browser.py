"""Debian's Chromium driven by Selenium through Debian's chromedriver, as a peer of the
console tests (tests/test_console_browser.py).

No browser is ever downloaded: Selenium is given /usr/bin/chromium and the chromedriver of
the Debian package `chromium-driver` (the same Chromium build) explicitly, and Selenium
Manager, which would otherwise look for (and fetch) a driver, is kept offline with SE_OFFLINE.
A missing tool fails the tests, never skips them (.ci/run installs both packages).
"""

from __future__ import annotations

import base64
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from selenium import webdriver
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service

T = TypeVar("T")

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
DESKTOP = (1280, 900)  # CSS px, the laptop of the issue
PHONE = (390, 844)  # CSS px, a phone held upright


def need(path: str, package: str) -> str:
    """`path` of a Debian package the browser tests require: fail, never skip, without it."""
    if not Path(path).exists() and shutil.which(Path(path).name) is None:
        pytest.fail(f"{path} is missing: the browser tests need Debian's {package}"
                    f" (apt-get install {package}; .ci/run does)")
    return path if Path(path).exists() else str(shutil.which(Path(path).name))


def chrome(size: tuple[int, int], downloads: Path) -> webdriver.Chrome:
    """A headless Chromium whose page area is `size` CSS px (width, height) and which saves
    every download, PDFs included (never opened in its viewer), into `downloads`."""
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never go to the network
    opts = webdriver.ChromeOptions()
    opts.binary_location = need(CHROMIUM, "chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-extensions", "--lang=en-US",
                f"--window-size={size[0]},{size[1]}", "--hide-scrollbars"):
        opts.add_argument(arg)
    opts.add_experimental_option("prefs", {
        "download.default_directory": str(downloads),
        "download.prompt_for_download": False,
        "plugins.always_open_pdf_externally": True,  # a PDF link downloads the file
    })
    service = Service(executable_path=need(CHROMEDRIVER, "chromium-driver"))
    driver = webdriver.Chrome(service=service, options=opts)
    # Headless Chromium keeps downloads only when told so over DevTools as well.
    driver.execute_cdp_cmd("Page.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": str(downloads)})
    # The window size includes no browser chrome in headless mode; pin the page area anyway,
    # so that "390 px" means what a 390 px phone's page gets.
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": size[0] < 600})
    driver.set_page_load_timeout(60)
    return driver


def wait_until(what: str, pred: Callable[[], T | None], timeout: float = 60.0,
               on_fail: Callable[[], str] = lambda: "") -> T:
    """Poll `pred` every 0.25 s until it returns a true value, which is returned; an element
    replaced under it (the live fragment is swapped every few seconds) or not there yet counts
    as not yet. Fail after `timeout` s with `on_fail()`'s text (logs, the page)."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            got = pred()
            if got:
                return got
        except (NoSuchElementException, StaleElementReferenceException, ValueError) as e:
            last = e
        time.sleep(0.25)
    pytest.fail(f"{what}: not within {timeout:g} s (last error: {last!r})\n{on_fail()}")


def scrolls_horizontally(driver: webdriver.Chrome) -> bool:
    """Whether the page body is wider than the page area (the user would scroll sideways)."""
    return bool(driver.execute_script(
        "const d = document.documentElement, b = document.body;"
        "return Math.max(d.scrollWidth, b ? b.scrollWidth : 0) > d.clientWidth;"))


def downloaded(folder: Path, suffix: str, timeout: float = 90.0) -> Path:
    """The first complete file ending in `suffix` that appears in `folder` (Chromium writes
    `*.crdownload` until the download is complete)."""
    def done() -> Path | None:
        files = [p for p in folder.iterdir() if p.name.endswith(suffix)]
        partial = [p for p in folder.iterdir() if p.name.endswith(".crdownload")]
        return files[0] if files and not partial and files[0].stat().st_size > 0 else None
    return wait_until(f"a {suffix} download in {folder}", done, timeout,
                      lambda: f"folder holds {sorted(p.name for p in folder.iterdir())}")


def data_page(html: str) -> str:
    """A `data:` URL of a small HTML page (the harness's own checks)."""
    return "data:text/html;base64," + base64.b64encode(html.encode()).decode()


def screenshot(driver: webdriver.Chrome, out: Path) -> None:
    """Save the whole page (not only what fits the page area) as PNG at `out`."""
    height = int(driver.execute_script(
        "return Math.max(document.documentElement.scrollHeight, document.body.scrollHeight)"))
    width = int(driver.execute_script("return window.innerWidth"))
    shown = int(driver.execute_script("return window.innerHeight"))
    mobile = width < 600
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": max(height, 1), "deviceScaleFactor": 1, "mobile": mobile})
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if not driver.save_screenshot(str(out)):
            raise WebDriverException(f"no screenshot saved to {out}")
    finally:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": shown, "deviceScaleFactor": 1,
            "mobile": mobile})
