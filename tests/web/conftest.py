"""Web tests: an app in embedded-SMTP mode whose inbox reads a real capture server's store."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from nurture_mail import create_app
from nurture_mail.config import Config
from nurture_mail.mail.capture import CaptureServer, CaptureStore


@pytest.fixture
def web_config(tmp_path: Path) -> Config:
    """No SMTP_URL: the built-in capture server is the relay and the inbox is on."""
    return Config.from_env({}, instance_path=tmp_path / "instance", secret_key="web-test-secret")


@pytest.fixture
def web_app(web_config: Config) -> Iterator[Flask]:
    app = create_app(web_config)
    app.config["TESTING"] = True
    yield app
    app.extensions["nurture"].close()


@pytest.fixture
def capture(web_config: Config) -> Iterator[CaptureServer]:
    """The capture server writing where the app's inbox reads (``config.capture_dir``)."""
    with CaptureServer(CaptureStore(web_config.capture_dir)) as server:
        yield server


@pytest.fixture
def live_server(web_app: Flask) -> Iterator[str]:
    """The app served over real HTTP on a free port, for a real browser; yields its base URL."""
    server = make_server("127.0.0.1", 0, web_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


CHROMIUM = Path("/usr/bin/chromium")
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
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
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
