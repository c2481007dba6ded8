"""Web tests: an app in embedded-SMTP mode whose inbox reads a real capture server's store."""
from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from nurture_mail import create_app
from nurture_mail.config import Config
from nurture_mail.mail.capture import CaptureServer, CaptureStore


@pytest.fixture
def web_config(tmp_path: Path) -> Config:
    """No SMTP_URL: the built-in capture server is the relay and the inbox is on."""
    return Config.from_env({}, instance_path=tmp_path / "instance", secret_key="web-test-secret")


#: One user per role, each with this password pattern (see ``sign_in``).
WEB_ROLES = ("admin", "marketer", "sales", "viewer")


def password_of(role: str) -> str:
    return f"{role}-web-password"


def add_users(app: Flask) -> None:
    """Migrate the app's database and create ``<role>@northwind.example`` for every role."""
    from nurture_mail.auth.accounts import create_user
    from nurture_mail.migrate import upgrade

    svc = app.extensions["nurture"]
    upgrade(svc.db)
    with svc.db.session() as session:
        for role in WEB_ROLES:
            create_user(session, f"{role}@northwind.example", role.title(), role, svc.clock.now(),
                        password=password_of(role))


def sign_in(client: FlaskClient, role: str = "admin") -> FlaskClient:
    """Sign the test client in through the real form (CSRF token and all)."""
    page = client.get("/signin").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
        r'name="csrf_token" value="([^"]+)"', page)
    assert token, "the sign-in page has no CSRF token"
    response = client.post("/signin", data={"csrf_token": token.group(1), "email": f"{role}@northwind.example",
                                            "password": password_of(role)})
    assert response.status_code == 303, response.get_data(as_text=True)
    return client


@pytest.fixture
def web_app(web_config: Config) -> Iterator[Flask]:
    app = create_app(web_config)
    app.config["TESTING"] = True
    add_users(app)
    yield app
    app.extensions["nurture"].close()


@pytest.fixture
def client(web_app: Flask) -> FlaskClient:
    """A test client signed in as the admin."""
    return sign_in(web_app.test_client(), "admin")


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


def browser_sign_in(page, base_url: str, role: str = "admin") -> None:
    """Sign in through the real form in the browser."""
    page.goto(f"{base_url}/signin")
    page.get_by_label("Email").fill(f"{role}@northwind.example")
    page.get_by_label("Password").fill(password_of(role))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}/")
