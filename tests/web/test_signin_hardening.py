"""Sign-in hardening: brute-force throttle, cookie flags, a fresh session at sign-in, NUL input;
and the role matrix on every inbox view, with a real captured message."""
from __future__ import annotations

import re
import smtplib
from email.message import EmailMessage

import pytest
from flask import Flask

from nurture_mail import create_app
from nurture_mail.auth.roles import allowed
from nurture_mail.config import Config
from nurture_mail.mail.capture import CaptureServer
from nurture_mail.web.signin import SIGNIN_RATE

from .conftest import WEB_ROLES, password_of, sign_in


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
        r'name="csrf_token" value="([^"]+)"', page)
    assert match
    return match.group(1)


def _attempt(client, email: str, password: str, remote: str = "198.51.100.7"):
    token = _csrf(client.get("/signin").get_data(as_text=True))
    return client.post("/signin", data={"csrf_token": token, "email": email, "password": password},
                       environ_base={"REMOTE_ADDR": remote})


def test_sign_in_attempts_are_throttled_per_client_and_address(web_app: Flask) -> None:
    limit = int(SIGNIN_RATE.split("/")[0])
    client = web_app.test_client()
    for _ in range(limit):
        assert _attempt(client, "admin@northwind.example", "wrong-password").status_code == 401
    blocked = _attempt(client, "admin@northwind.example", password_of("admin"))
    assert blocked.status_code == 429  # even the right password waits: the guessing is throttled
    assert client.get("/").status_code == 302
    # another address from the same client, and the same address from another client, are not held up
    assert _attempt(client, "viewer@northwind.example", password_of("viewer")).status_code == 303
    other = web_app.test_client()
    assert _attempt(other, "admin@northwind.example", password_of("admin"), remote="203.0.113.5").status_code == 303
    # the sign-in page itself (GET) is never throttled
    assert web_app.test_client().get("/signin", environ_base={"REMOTE_ADDR": "198.51.100.7"}).status_code == 200


def test_cookies_are_hardened_and_the_session_is_fresh_at_sign_in(web_app: Flask) -> None:
    from datetime import timedelta

    assert web_app.config["SESSION_COOKIE_SAMESITE"] == "Lax" and web_app.config["SESSION_COOKIE_HTTPONLY"]
    assert web_app.config["REMEMBER_COOKIE_SAMESITE"] == "Lax"
    assert web_app.config["REMEMBER_COOKIE_DURATION"] == timedelta(days=14)
    assert web_app.config["SESSION_COOKIE_SECURE"] is False  # BASE_URL is http:// here
    client = web_app.test_client()
    with client.session_transaction() as session:
        session["planted"] = "by an attacker"
    token = _csrf(client.get("/signin").get_data(as_text=True))
    response = client.post("/signin", data={"csrf_token": token, "email": "viewer@northwind.example",
                                            "password": password_of("viewer"), "remember": "y"})
    assert response.status_code == 303
    with client.session_transaction() as session:
        assert "planted" not in session
    cookies = response.headers.getlist("Set-Cookie")
    remember = [c for c in cookies if c.startswith("remember_token=")]
    assert remember and "HttpOnly" in remember[0] and "SameSite=Lax" in remember[0]
    session_cookie = [c for c in cookies if c.startswith("session=")]
    assert session_cookie and "HttpOnly" in session_cookie[0] and "SameSite=Lax" in session_cookie[0]


def test_cookies_are_secure_when_served_over_https(tmp_path) -> None:
    config = Config.from_env({}, instance_path=tmp_path / "instance", secret_key="s",
                             base_url="https://nurture.example")
    app = create_app(config)
    try:
        assert app.config["SESSION_COOKIE_SECURE"] is True and app.config["REMEMBER_COOKIE_SECURE"] is True
    finally:
        app.extensions["nurture"].close()


def test_nul_in_the_sign_in_form_is_a_form_error_not_a_500(web_app: Flask) -> None:
    client = web_app.test_client()
    for email, password in (("admin\x00@northwind.example", "x"), ("admin@northwind.example", "pass\x00word")):
        response = _attempt(client, email, password, remote="192.0.2.44")
        assert response.status_code == 400, response.status_code
    assert client.get("/").status_code == 302


def _send(server: CaptureServer) -> None:
    message = EmailMessage()
    message["Subject"] = "Matrix"
    message["From"] = "nurture@northwind.example"
    message["To"] = "ana@example.com"
    message.set_content("Plain words.\n")
    with smtplib.SMTP(server.host, server.port, timeout=10) as client:
        client.send_message(message)


@pytest.mark.parametrize("role", WEB_ROLES)
def test_inbox_message_and_raw_views_per_role(web_app: Flask, capture: CaptureServer, role: str) -> None:
    _send(capture)
    key = capture.store.list()[0].key
    client = sign_in(web_app.test_client(), role)
    for path in (f"/inbox/{key}", f"/inbox/{key}/raw"):
        response = client.get(path)
        if allowed(role, "inbox:read"):
            assert response.status_code == 200, (role, path)
        else:
            assert response.status_code == 403, (role, path)
            assert b"Matrix" not in response.get_data()
