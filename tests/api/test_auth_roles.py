"""Every route under every role: none, a revoked token, viewer, sales, marketer, admin.

The expected status comes from the one permission table (``auth/roles.py``): a role without
the route's permission gets 403, one with it gets past the check (whatever the route then says).
"""
from __future__ import annotations

import pytest

from nurture_mail.auth.roles import allowed

from .conftest import ROLES, ApiPlatform

#: (method, path, permission, json body or None)
ROUTES = [
    ("GET", "/api/v1/leads", "leads:read", None),
    ("POST", "/api/v1/leads", "leads:write", {"email": "role.check@example.com"}),
    ("GET", "/api/v1/leads/{lead}", "leads:read", None),
    ("PATCH", "/api/v1/leads/{lead}", "leads:write", {"title": "CTO"}),
    ("POST", "/api/v1/leads/{lead}/erase", "leads:erase", None),
    ("POST", "/api/v1/enrollments", "enrollments:write", {"lead_id": "{lead}", "campaign": "northwind-security"}),
    ("GET", "/api/v1/enrollments/1", "leads:read", None),
    ("POST", "/api/v1/enrollments/1/pause", "enrollments:write", {}),
    ("POST", "/api/v1/enrollments/1/resume", "enrollments:write", {}),
    ("POST", "/api/v1/enrollments/1/exit", "enrollments:write", {}),
    ("GET", "/api/v1/campaigns", "campaigns:read", None),
    ("GET", "/api/v1/campaigns/northwind-security", "campaigns:read", None),
    ("GET", "/api/v1/campaigns/northwind-security/journey/{lead}", "campaigns:read", None),
    ("POST", "/api/v1/events", "events:write", {"lead_id": "{lead}", "kind": "webinar"}),
    ("POST", "/api/v1/imports", "imports:write", None),
    ("GET", "/api/v1/imports/1", "imports:read", None),
    ("GET", "/api/v1/imports/1/report", "imports:read", None),
    ("GET", "/api/v1/handoffs", "handoffs:read", None),
    ("GET", "/api/v1/handoffs/1", "handoffs:read", None),
    ("POST", "/api/v1/handoffs/1/accept", "handoffs:act", None),
    ("POST", "/api/v1/handoffs/1/reject", "handoffs:act", {"kind": "bad_fit", "reason": "student"}),
    ("POST", "/api/v1/handoffs/1/won", "handoffs:act", {"value": "1000.00"}),
    ("POST", "/api/v1/handoffs/1/lost", "handoffs:act", {"reason": "budget"}),
    ("POST", "/api/v1/leads/{lead}/hand-to-nurture", "handoffs:act", {"campaign": "northwind-security"}),
]


def _fill(value, lead_id: int):
    if isinstance(value, str):
        return value.replace("{lead}", str(lead_id))
    if isinstance(value, dict):
        return {k: (lead_id if v == "{lead}" else _fill(v, lead_id)) for k, v in value.items()}
    return value


def test_every_documented_route_is_in_the_matrix(sqlite_api: ApiPlatform) -> None:
    spec = sqlite_api.client.get("/api/openapi.json").get_json()
    documented = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops
                  if method in ("get", "post", "patch", "put", "delete")}
    tested = {(method, path.replace("{lead}", "{lead_id}")) for method, path, _, _ in ROUTES}
    normalized = set()
    for method, path in documented:
        for name in ("enrollment_id", "import_id", "handoff_id"):
            path = path.replace("{" + name + "}", "1")
        normalized.add((method, path.replace("{slug}", "northwind-security")))
    assert normalized == tested


@pytest.mark.parametrize("method,path,permission,body", ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
def test_route_under_every_role(sqlite_api: ApiPlatform, method: str, path: str, permission: str, body) -> None:
    api = sqlite_api
    lead_id = api.add_lead("someone@example.com")
    url = _fill(path, lead_id)
    kwargs = {"json": _fill(body, lead_id)} if body is not None else {}

    for who in (None, "revoked"):
        response = api.call(method, url, role=who, **kwargs)
        assert response.status_code == 401, (who, response.get_json())
        assert response.mimetype == "application/problem+json"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.get_json()["errors"][0]["field"] == "Authorization"
    for role in ROLES:
        response = api.call(method, url, role=role, **kwargs)
        if allowed(role, permission):
            assert response.status_code not in (401, 403), (role, response.get_json())
            assert response.status_code < 500
        else:
            assert response.status_code == 403, (role, response.status_code)
            problem = response.get_json()
            assert permission in problem["detail"] and role in problem["detail"]


def test_token_last_use_is_recorded_and_only_the_hash_is_stored(sqlite_api: ApiPlatform) -> None:
    from sqlalchemy import select

    from nurture_mail.models import ApiToken

    token = sqlite_api.tokens["viewer"]
    assert sqlite_api.call("GET", "/api/v1/campaigns", role="viewer").status_code == 200
    with sqlite_api.svc.db.session() as session:
        rows = list(session.scalars(select(ApiToken)))
        assert all(token not in (row.token_hash, row.prefix) for row in rows)
        used = [row for row in rows if row.last_used_at is not None]
        assert len(used) == 1 and token.startswith(used[0].prefix)


def test_malformed_authorization_headers(sqlite_api: ApiPlatform) -> None:
    client = sqlite_api.client
    for header in ("Basic YWRtaW46YWRtaW4=", "Bearer", "Bearer ", f"Token {sqlite_api.tokens['admin']}",
                   "Bearer nm_forged"):
        response = client.get("/api/v1/leads", headers={"Authorization": header})
        assert response.status_code == 401, header
    assert client.get("/api/v1/leads", headers={"Authorization": f"bearer {sqlite_api.tokens['admin']}"}).status_code == 200
