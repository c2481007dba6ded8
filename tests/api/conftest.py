"""An API test platform: the app on each database, campaigns synced, one user and token per role."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from nurture_mail.auth.accounts import create_user, issue_token, revoke_token
from nurture_mail.campaigns import CampaignLoader, sync_all
from nurture_mail.clock import FrozenClock
from nurture_mail.models import Handoff, HandoffState, Lead, LeadStatus, SalesRep

ROLES = ("admin", "marketer", "sales", "viewer")


@dataclass
class ApiPlatform:
    app: Flask
    clock: FrozenClock
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def svc(self):
        return self.app.extensions["nurture"]

    @property
    def client(self) -> FlaskClient:
        return self.app.test_client()

    def headers(self, role: str | None = "admin", **extra: str) -> dict[str, str]:
        headers = dict(extra)
        if role is not None:
            headers["Authorization"] = f"Bearer {self.tokens[role]}"
        return headers

    def call(self, method: str, path: str, role: str | None = "admin", headers: dict[str, str] | None = None,
             **kwargs: Any):
        return self.client.open(path, method=method, headers={**self.headers(role), **(headers or {})}, **kwargs)

    def add_lead(self, email: str, **fields: Any) -> int:
        now = self.clock.now()
        with self.svc.db.session() as session:
            lead = Lead(email=email, timezone=fields.pop("timezone", "America/New_York"), created_at=now,
                        updated_at=now, status=fields.pop("status", LeadStatus.new), qualification={},
                        custom_fields={}, **fields)
            session.add(lead)
            session.flush()
            return lead.id

    def rep(self, email: str = "sales@northwind.example") -> int:
        """The sales rep with this address (created on first use)."""
        with self.svc.db.session() as session:
            rep = session.scalar(select(SalesRep).where(SalesRep.email == email))
            if rep is None:
                rep = SalesRep(email=email, name=email.split("@")[0], created_at=self.clock.now())
                session.add(rep)
                session.flush()
            return rep.id

    def handoff(self, email: str, rep: str | None = "sales@northwind.example") -> tuple[int, int]:
        """A new lead handed to ``rep`` (None: to nobody) and notified: (lead id, handoff id)."""
        lead_id = self.add_lead(email)
        rep_id = self.rep(rep) if rep else None
        now = self.clock.now()
        with self.svc.db.session() as session:
            handoff = Handoff(lead_id=lead_id, reason="manual", state=HandoffState.notified, created_at=now,
                              notified_at=now, dossier={"lead": email}, rep_id=rep_id)
            session.add(handoff)
            session.flush()
            return lead_id, handoff.id


def build_platform(app: Flask, clock: FrozenClock) -> ApiPlatform:
    svc = app.extensions["nurture"]
    config = svc.config
    specs, problems = CampaignLoader(config.templates_dir).load_dir(config.campaigns_dir)
    assert not problems, problems
    platform = ApiPlatform(app, clock)
    with svc.db.session() as session:
        sync_all(session, specs, clock.now())
        for role in ROLES:
            user = create_user(session, f"{role}@northwind.example", role.title(), role, clock.now(),
                               password=f"{role}-password-123")
            platform.tokens[role] = issue_token(session, user, "tests", clock.now()).secret
        revoked_user = create_user(session, "gone@northwind.example", "Gone", "admin", clock.now())
        revoked = issue_token(session, revoked_user, "old", clock.now())
        revoke_token(session, str(revoked.token.id), clock.now())
        platform.tokens["revoked"] = revoked.secret
    return platform


@pytest.fixture
def api(make_app, database_url, clock) -> ApiPlatform:
    return build_platform(make_app(database_url), clock)


@pytest.fixture
def sqlite_api(make_app, sqlite_url, clock) -> ApiPlatform:
    return build_platform(make_app(sqlite_url), clock)
