"""A real headless Chromium for the page tests, driven by Playwright through the system's browser.

Debian's ``chromium`` package is the browser (``apt-get install -y chromium``; CI installs it); Playwright's
Python package drives it through ``executable_path``, so there is no browser download. Where neither is at
hand the tests skip with one line saying how to get them, except under CI (``CI=true``), where a missing
browser is a failure: the page must be checked there.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager

import pytest

FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def _missing(why: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must test the page in a real browser: {why}")
    pytest.skip(f"no headless browser ({why}): apt-get install -y chromium && pip install playwright")


@contextmanager
def chromium_page(width: int = 1280, height: int = 900):
    """A fresh page of headless Chromium, and the console errors it logs (a list filled as it runs)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed")
    executable = os.environ.get("OOD_BENCH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not executable:
        _missing("no chromium on PATH")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            yield page, errors
        finally:
            browser.close()
