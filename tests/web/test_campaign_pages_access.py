"""Who may open or post to each campaign, template editor and import route (and anonymous visitors).

Every route of the ``campaigns``, ``templates_editor`` and ``imports`` blueprints must be in
``ROUTES``: a new route without its line here fails ``test_every_route_is_in_the_table``.
"""
from __future__ import annotations

import re

import pytest

from nurture_mail.campaigns import CampaignLoader, sync_all
from nurture_mail.leads.imports import create_import

from .conftest import WEB_ROLES, sign_in

READ_CAMPAIGNS = {"admin", "marketer", "sales", "viewer"}
WRITE_CAMPAIGNS = {"admin", "marketer"}
READ_IMPORTS = {"admin", "marketer", "viewer"}
WRITE_IMPORTS = {"admin", "marketer"}

#: (method, URL, roles allowed, endpoint); {import_id} is filled in by the test.
ROUTES = [
    ("GET", "/campaigns/", READ_CAMPAIGNS, "campaigns.index"),
    ("GET", "/campaigns/northwind-security", READ_CAMPAIGNS, "campaigns.show"),
    ("GET", "/campaigns/northwind-security/file", READ_CAMPAIGNS, "campaigns.download"),
    ("POST", "/campaigns/northwind-security/pause", WRITE_CAMPAIGNS, "campaigns.pause"),
    ("POST", "/campaigns/northwind-security/resume", WRITE_CAMPAIGNS, "campaigns.resume"),
    ("GET", "/campaigns/new", WRITE_CAMPAIGNS, "campaigns.new"),
    ("POST", "/campaigns/new", WRITE_CAMPAIGNS, "campaigns.review_new"),
    ("GET", "/campaigns/northwind-security/edit", WRITE_CAMPAIGNS, "campaigns.edit"),
    ("POST", "/campaigns/northwind-security/edit", WRITE_CAMPAIGNS, "campaigns.review"),
    ("POST", "/campaigns/save", WRITE_CAMPAIGNS, "campaigns.save"),
    ("GET", "/campaigns/northwind-security/steps/pricing/email", WRITE_CAMPAIGNS, "templates_editor.edit"),
    ("POST", "/campaigns/northwind-security/steps/pricing/email", WRITE_CAMPAIGNS, "templates_editor.edit"),
    ("GET", "/imports/", READ_IMPORTS, "imports.index"),
    ("POST", "/imports/", WRITE_IMPORTS, "imports.upload"),
    ("GET", "/imports/new/0123456789abcdef0123456789abcdef", WRITE_IMPORTS, "imports.review"),
    ("POST", "/imports/new/0123456789abcdef0123456789abcdef", WRITE_IMPORTS, "imports.review"),
    ("GET", "/imports/{import_id}", READ_IMPORTS, "imports.show"),
    ("GET", "/imports/{import_id}/progress", READ_IMPORTS, "imports.progress"),
    ("GET", "/imports/{import_id}/report.csv", READ_IMPORTS, "imports.report"),
    ("POST", "/imports/{import_id}/resume", WRITE_IMPORTS, "imports.resume"),
]


@pytest.fixture
def seeded(web_app):
    svc = web_app.extensions["nurture"]
    config = svc.config
    specs, _ = CampaignLoader(config.templates_dir).load_dir(config.campaigns_dir)
    with svc.db.session() as session:
        sync_all(session, specs, svc.clock.now())
        job = create_import(svc, session, filename="a.csv", data=b"email\nann@acme.example\n", lead_source="t",
                            now=svc.clock.now())
        session.flush()
        return job.id


def _token(client) -> str:
    page = client.get("/campaigns/").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_every_route_is_in_the_table(web_app) -> None:
    listed = {(method, endpoint) for method, _url, _roles, endpoint in ROUTES}
    for rule in web_app.url_map.iter_rules():
        if rule.endpoint.partition(".")[0] in ("campaigns", "templates_editor", "imports"):
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                assert (method, rule.endpoint) in listed, f"{method} {rule.rule} is not in ROUTES"


@pytest.mark.parametrize("role", [*WEB_ROLES, None])
def test_each_role_gets_exactly_its_access(web_app, seeded, role) -> None:
    client = web_app.test_client()
    token = None
    if role is not None:
        sign_in(client, role)
        token = _token(client)
    for method, url, allowed, _endpoint in ROUTES:
        url = url.format(import_id=seeded)
        if method == "GET":
            response = client.get(url)
        else:
            response = client.post(url, data={"csrf_token": token} if token else {})
        status = response.status_code
        if role is None:
            if method == "GET":
                assert status == 302 and "/signin" in response.headers["Location"], (url, status)
            else:  # no session, so no CSRF token either: refused before any view runs
                assert status in (302, 400), (method, url, status)
        elif role in allowed:
            assert status not in (401, 403), (role, method, url, status)
            assert status < 500, (role, method, url, status)
        else:
            assert status == 403, (role, method, url, status)
