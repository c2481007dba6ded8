"""Sign-in, sign-out, safe ``next`` redirects and role checks on every web view (test client)."""
from __future__ import annotations

import re

import pytest
from flask import Flask

from nurture_mail.auth.roles import allowed
from nurture_mail.web.signin import safe_next

from .conftest import WEB_ROLES, password_of, sign_in


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
        r'name="csrf_token" value="([^"]+)"', page)
    assert match
    return match.group(1)


def test_views_need_a_signed_in_user(web_app: Flask) -> None:
    client = web_app.test_client()
    for path in ("/", "/inbox/", "/inbox/some-key", "/inbox/some-key/raw"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/signin?next=")
    assert client.get("/signin").status_code == 200
    assert client.get("/assets/app.css").status_code == 200  # the stylesheet of the sign-in page


def test_wrong_password_and_unknown_user_look_the_same(web_app: Flask) -> None:
    client = web_app.test_client()
    for email, password in (("admin@northwind.example", "wrong-password"), ("nobody@example.com", "whatever-123")):
        token = _csrf(client.get("/signin").get_data(as_text=True))
        response = client.post("/signin", data={"csrf_token": token, "email": email, "password": password})
        assert response.status_code == 401
        assert "Wrong email or password." in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_sign_in_needs_the_csrf_token(web_app: Flask) -> None:
    client = web_app.test_client()
    response = client.post("/signin", data={"email": "admin@northwind.example", "password": password_of("admin")})
    assert response.status_code == 400
    assert client.get("/").status_code == 302


def test_next_redirect_is_followed_only_within_the_site(web_app: Flask) -> None:
    client = web_app.test_client()
    page = client.get("/signin?next=/inbox/").get_data(as_text=True)
    response = client.post("/signin?next=/inbox/", data={
        "csrf_token": _csrf(page), "email": "viewer@northwind.example", "password": password_of("viewer")})
    assert response.status_code == 303 and response.headers["Location"] == "/inbox/"

    other = web_app.test_client()
    page = other.get("/signin").get_data(as_text=True)
    response = other.post("/signin?next=https://evil.example/phish", data={
        "csrf_token": _csrf(page), "email": "viewer@northwind.example", "password": password_of("viewer")})
    assert response.headers["Location"] == "/"
    for bad in ("//evil.example", "https://evil.example", "/\\evil.example", "javascript:alert(1)", "evil", ""):
        assert safe_next(bad) is None, bad
    assert safe_next("/inbox/?page=2") == "/inbox/?page=2"


def test_sign_out_needs_a_post_with_the_token(web_app: Flask) -> None:
    client = sign_in(web_app.test_client(), "viewer")
    home = client.get("/").get_data(as_text=True)
    assert "viewer@northwind.example · viewer" in home
    assert client.post("/signout").status_code == 400  # no CSRF token
    assert client.get("/").status_code == 200
    response = client.post("/signout", data={"csrf_token": _csrf(home)})
    assert response.status_code == 303
    assert client.get("/").status_code == 302


#: Every web view with the permission its role check names.
VIEWS = [("GET", "/", "leads:read"), ("GET", "/inbox/", "inbox:read"), ("POST", "/inbox/clear", "inbox:clear")]


@pytest.mark.parametrize("role", WEB_ROLES)
def test_role_checks_on_views(web_app: Flask, role: str) -> None:
    client = sign_in(web_app.test_client(), role)
    token = _csrf(client.get("/").get_data(as_text=True))
    for method, path, permission in VIEWS:
        data = {"csrf_token": token} if method == "POST" else None
        response = client.open(path, method=method, data=data)
        if allowed(role, permission):
            assert response.status_code in (200, 303), (role, path, response.status_code)
            if path == "/inbox/":
                assert ("Clear inbox" in response.get_data(as_text=True)) == allowed(role, "inbox:clear")
        else:
            assert response.status_code == 403, (role, path)
            assert "Not allowed" in response.get_data(as_text=True)


def test_every_web_view_has_a_role_check(web_app: Flask) -> None:
    """A new view without ``@role_required`` fails here (sign-in and assets are public)."""
    public = {"signin.signin", "signin.signout", "home.static", "static"}
    for rule in web_app.url_map.iter_rules():
        blueprint = rule.endpoint.partition(".")[0]
        if blueprint not in ("home", "inbox", "signin") or rule.endpoint in public:
            continue
        view = web_app.view_functions[rule.endpoint]
        assert getattr(view, "required_permission", None), f"{rule.endpoint} has no @role_required"


def test_a_deactivated_user_is_signed_out(web_app: Flask) -> None:
    from sqlalchemy import update

    from nurture_mail.models import User

    client = sign_in(web_app.test_client(), "marketer")
    assert client.get("/").status_code == 200
    with web_app.extensions["nurture"].db.session() as session:
        session.execute(update(User).where(User.email == "marketer@northwind.example").values(active=False))
    assert client.get("/").status_code == 302
