"""Every route of the app × every role (and anonymous) gets exactly the access declared here.

The table below is the one place that says who may use which route. A route that is not in
it fails the test: whoever adds a route adds its line (with the roles that may use it).

- a set of roles: a web page or form; those roles get through the role check (any status but
  403 and the sign-in redirect; a made-up id gives 404), every other role gets 403 and an
  anonymous visitor is sent to the sign-in page;
- ``PUBLIC``: needs no session (sign-in page, assets, tracking, unsubscribe, signed sales links,
  the OpenAPI document, the signed ESP webhook): never sends anyone to the sign-in page;
- ``TOKEN``: the bearer-token API: a browser session is not enough (401, signed in or not);
- ``SESSION``: any signed-in user (sign-out): anonymous visitors are sent to the sign-in page.
"""
from __future__ import annotations

import re

import pytest
from flask import Flask

from .conftest import WEB_ROLES, sign_in

ALL = frozenset(WEB_ROLES)
ADMIN = frozenset({"admin"})
WRITERS = frozenset({"admin", "marketer"})
SALES = frozenset({"admin", "sales"})
IMPORT_READERS = frozenset({"admin", "marketer", "viewer"})
PUBLIC, TOKEN, SESSION = "public", "token", "session"

ACCESS: dict[str, object] = {
    # dashboard, assets
    "home.index": ALL,
    "home.static": PUBLIC,
    "static": PUBLIC,
    "signin.signin": PUBLIC,
    "signin.signout": SESSION,
    # capture inbox (embedded SMTP mode)
    "inbox.index": ALL,
    "inbox.message": ALL,
    "inbox.raw": ALL,
    "inbox.clear": WRITERS,
    # leads
    "leads.index": ALL,
    "leads.show": ALL,
    "leads.message": ALL,
    "leads.bulk": WRITERS,
    "leads.enroll": WRITERS,
    "leads.pause": WRITERS,
    "leads.resume": WRITERS,
    "leads.exit_enrollment": WRITERS,
    "leads.declare": WRITERS,
    "leads.hand_to_sales": WRITERS,
    "leads.erase_confirm": ADMIN,
    "leads.erase": ADMIN,
    # campaigns, the campaign editor and the template editor
    "campaigns.index": ALL,
    "campaigns.show": ALL,
    "campaigns.download": ALL,
    "campaigns.pause": WRITERS,
    "campaigns.resume": WRITERS,
    "campaigns.new": WRITERS,
    "campaigns.review_new": WRITERS,
    "campaigns.edit": WRITERS,
    "campaigns.review": WRITERS,
    "campaigns.save": WRITERS,
    "templates_editor.edit": WRITERS,
    # imports (sales reps do not see imports)
    "imports.index": IMPORT_READERS,
    "imports.upload": WRITERS,
    "imports.review": WRITERS,
    "imports.show": IMPORT_READERS,
    "imports.progress": IMPORT_READERS,
    "imports.report": IMPORT_READERS,
    "imports.resume": WRITERS,
    # suppressions
    "suppressions.index": ALL,
    "suppressions.add": WRITERS,
    "suppressions.remove": ADMIN,
    # users and API tokens
    "users.index": ADMIN,
    "users.create": ADMIN,
    "users.update": ADMIN,
    "users.issue_token": ADMIN,
    "users.revoke_token": ADMIN,
    # sales: handoffs, availability, hand a lead to nurture
    "handoffs.index": ALL,
    "handoffs.show": ALL,
    "handoffs.team": ALL,
    "handoffs.act": SALES,
    "handoffs.availability": SALES,
    "sales_nurture.form": SALES,
    # reports
    "reports.index": ALL,
    "reports.show": ALL,
    "reports.csv": ALL,
    "reports.subscription": ALL,
    "reports.send_monthly": WRITERS,
    # tracking, unsubscribe, signed sales links, ESP webhook
    "clicks.click": PUBLIC,
    "clicks.open_pixel": PUBLIC,
    "clicks.not_a_pixel": PUBLIC,
    "unsubscribe.page": PUBLIC,
    "unsubscribe.confirm": PUBLIC,
    "unsubscribe.one_click": PUBLIC,
    "sales.page": PUBLIC,
    "sales.act": PUBLIC,
    "webhooks.events": PUBLIC,
    "api-docs.openapi_json": PUBLIC,
    # the API (token authentication, its own role checks are tested in tests/api)
    **{endpoint: TOKEN for endpoint in (
        "api_campaigns.get_campaign", "api_campaigns.journey", "api_campaigns.list_campaigns",
        "api_enrollments.create_enrollment", "api_enrollments.exit_enrollment", "api_enrollments.get_enrollment",
        "api_enrollments.pause", "api_enrollments.resume", "api_events.ingest", "api_handoffs.accept",
        "api_handoffs.get_handoff", "api_handoffs.hand_to_nurture", "api_handoffs.list_handoffs",
        "api_handoffs.lost", "api_handoffs.reject", "api_handoffs.won", "api_imports.get_import",
        "api_imports.report", "api_imports.upload", "api_leads.create_or_upsert", "api_leads.erase_lead",
        "api_leads.get_lead", "api_leads.list_leads", "api_leads.patch_lead",
    )},
}

#: A value for each kind of URL argument: ids that do not exist, tokens that do not verify.
SAMPLES = {"int": 987654, "default": "x", "string": "x", "path": "x.css"}


def requests(app: Flask):
    """(endpoint, method, path) of every route of the app."""
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.endpoint, r.rule)):
        values = {}
        for name, converter in rule._converters.items():
            kind = type(converter).__name__.replace("Converter", "").lower()
            values[name] = SAMPLES.get("int" if kind in ("integer", "int") else kind, "x")
        path = rule.build(values, append_unknown=False)[1]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule.endpoint, method, path


def csrf_of(client) -> str:
    page = client.get("/signin" if client.get("/").status_code != 200 else "/").get_data(as_text=True)
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert match, "no CSRF token on the page"
    return match.group(1)


def call(client, method: str, path: str, token: str):
    data = {"csrf_token": token} if method != "GET" else None
    return client.open(path, method=method, data=data)


def to_signin(response) -> bool:
    return response.status_code in (301, 302, 303) and "/signin" in response.headers.get("Location", "")


def test_every_route_is_in_the_table(web_app: Flask) -> None:
    endpoints = {endpoint for endpoint, _, _ in requests(web_app)}
    unknown = sorted(endpoints - ACCESS.keys())
    assert not unknown, f"routes without a line in ACCESS (add who may use them): {unknown}"
    gone = sorted(ACCESS.keys() - endpoints)
    assert not gone, f"ACCESS lists routes that no longer exist: {gone}"


def test_anonymous_visitors(web_app: Flask) -> None:
    client = web_app.test_client()
    token = csrf_of(client)
    for endpoint, method, path in requests(web_app):
        expected = ACCESS.get(endpoint)
        response = call(client, method, path, token)
        where = f"{method} {path} ({endpoint})"
        assert response.status_code < 500, where
        if expected == PUBLIC:
            assert not to_signin(response) and response.status_code != 403, where
        elif expected == TOKEN:
            assert response.status_code == 401, where
        else:
            assert to_signin(response), f"{where}: {response.status_code}, expected the sign-in redirect"


@pytest.mark.parametrize("role", WEB_ROLES)
def test_each_role(web_app: Flask, role: str) -> None:
    client = sign_in(web_app.test_client(), role)
    token = csrf_of(client)
    checked = 0
    for endpoint, method, path in requests(web_app):
        expected = ACCESS.get(endpoint)
        where = f"{role}: {method} {path} ({endpoint})"
        if expected == SESSION:
            continue  # signing out would end this client's session; covered in test_signin.py
        response = call(client, method, path, token)
        assert response.status_code < 500, where
        if expected == PUBLIC:
            assert not to_signin(response), where
        elif expected == TOKEN:
            assert response.status_code == 401, f"{where}: a browser session must not open the API"
        elif role in expected:
            assert response.status_code != 403 and not to_signin(response), f"{where}: refused"
        else:
            assert response.status_code == 403, f"{where}: {response.status_code}, expected 403"
        checked += 1
    assert checked > 40
