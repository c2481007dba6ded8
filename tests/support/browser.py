"""The browser (plugin): Debian's Chromium driven by Playwright, one per session, and a fresh
``page`` per test."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from ci import require

#: Debian's Chromium (``NURTURE_TEST_CHROMIUM`` names another binary).
CHROMIUM = Path(os.environ.get("NURTURE_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def chromium():
    """Debian's Chromium driven by Playwright (never a downloaded browser); skipped if absent."""
    if not CHROMIUM.exists():
        require(f"no Chromium at {CHROMIUM}", "apt-get install -y chromium (make browser does it as root)")
    try:
        from playwright import sync_api
    except ImportError:
        require("playwright is not installed", "pip install -r requirements.txt")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    """A fresh browser context (cookies, storage) and page per test."""
    context = chromium.new_context(accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()
