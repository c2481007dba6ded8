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
    ("GET", "/api/v1/enrollments/{enrollment}", "leads:read", None),
    ("POST", "/api/v1/enrollments/{enrollment}/pause", "enrollments:write", {}),
    ("POST", "/api/v1/enrollments/{enrollment}/resume", "enrollments:write", {}),
    ("POST", "/api/v1/enrollments/{enrollment}/exit", "enrollments:write", {}),
    ("GET", "/api/v1/campaigns", "campaigns:read", None),
    ("GET", "/api/v1/campaigns/northwind-security", "campaigns:read", None),
    ("GET", "/api/v1/campaigns/northwind-security/journey/{lead}", "campaigns:read", None),
    ("POST", "/api/v1/events", "events:write", {"lead_id": "{lead}", "kind": "webinar"}),
    ("POST", "/api/v1/imports", "imports:write", None),
    ("GET", "/api/v1/imports/{import}", "imports:read", None),
    ("GET", "/api/v1/imports/{import}/report", "imports:read", None),
    ("GET", "/api/v1/handoffs", "handoffs:read", None),
    ("GET", "/api/v1/handoffs/{handoff}", "handoffs:read", None),
    ("POST", "/api/v1/handoffs/{handoff}/accept", "handoffs:act", None),
    ("POST", "/api/v1/handoffs/{handoff}/reject", "handoffs:act", {"kind": "bad_fit", "reason": "student"}),
    ("POST", "/api/v1/handoffs/{handoff}/won", "handoffs:act", {"value": "1000.00"}),
    ("POST", "/api/v1/handoffs/{handoff}/lost", "handoffs:act", {"reason": "budget"}),
    ("POST", "/api/v1/leads/{lead}/hand-to-nurture", "handoffs:act", {"campaign": "northwind-security"}),
]


def _fill(value, ids: dict[str, int]):
    if isinstance(value, str):
        for name, number in ids.items():
            if value == "{" + name + "}":
                return number
            value = value.replace("{" + name + "}", str(number))
        return value
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


def _resources(api: ApiPlatform) -> dict[str, int]:
    """Real records for every path id, so an allowed role reaches the route's logic (not a 404):
    a lead, its enrollment, an import job, and a handoff held by the sales user's rep."""
    import io

    from nurture_mail.models import Handoff, HandoffState, SalesRep

    lead_id = api.add_lead("someone@example.com", consent=True)
    enrollment = api.call("POST", "/api/v1/enrollments", json={"lead_id": lead_id, "campaign": "northwind-security"})
    assert enrollment.status_code == 201, enrollment.get_json()
    upload = api.call("POST", "/api/v1/imports", data={"file": (io.BytesIO(b"email\nrow@example.com\n"), "r.csv")},
                      content_type="multipart/form-data")
    assert upload.status_code == 202, upload.get_json()
    now = api.clock.now()
    handoff_lead = api.add_lead("handed@example.com", consent=True)
    with api.svc.db.session() as session:
        rep = SalesRep(email="sales@northwind.example", name="Sales", created_at=now)
        session.add(rep)
        session.flush()
        handoff = Handoff(lead_id=handoff_lead, reason="manual", state=HandoffState.notified, created_at=now,
                          notified_at=now, dossier={}, rep_id=rep.id)
        session.add(handoff)
        session.flush()
        handoff_id = handoff.id
    return {"lead": lead_id, "enrollment": enrollment.get_json()["id"], "import": upload.get_json()["id"],
            "handoff": handoff_id}


def _deactivated_token(api: ApiPlatform) -> str:
    from nurture_mail.auth.accounts import create_user, issue_token

    with api.svc.db.session() as session:
        user = create_user(session, "left@northwind.example", "Left", "admin", api.clock.now())
        secret = issue_token(session, user, "old", api.clock.now()).secret
        user.active = False
    return secret


def test_every_documented_route_is_in_the_matrix(sqlite_api: ApiPlatform) -> None:
    spec = sqlite_api.client.get("/api/openapi.json").get_json()
    documented = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops
                  if method in ("get", "post", "patch", "put", "delete")}
    tested = set()
    for method, path, _, _ in ROUTES:
        for name in ("lead", "enrollment", "import", "handoff"):
            path = path.replace("{" + name + "}", "{" + name + "_id}")
        tested.add((method, path))
    normalized = {(method, path.replace("{slug}", "northwind-security")) for method, path in documented}
    assert normalized == tested


@pytest.mark.parametrize("method,path,permission,body", ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
def test_route_under_every_role(sqlite_api: ApiPlatform, method: str, path: str, permission: str, body) -> None:
    api = sqlite_api
    ids = _resources(api)
    url = _fill(path, ids)
    kwargs = {"json": _fill(body, ids)} if body is not None else {}
    api.tokens["deactivated"] = _deactivated_token(api)

    for who in (None, "revoked", "deactivated"):
        response = api.call(method, url, role=who, **kwargs)
        assert response.status_code == 401, (who, response.get_json())
        assert response.mimetype == "application/problem+json"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.get_json()["errors"][0]["field"] == "Authorization"
    for role in ROLES:
        response = api.call(method, url, role=role, **kwargs)
        response.get_data()  # a streamed body (the import report) is read to its end and closed here
        response.close()
        if allowed(role, permission):
            assert response.status_code not in (401, 403, 404), (role, response.status_code, response.get_json())
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
