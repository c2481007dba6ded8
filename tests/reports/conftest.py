"""Reports and the sales workspace on the integration platform (app, real SMTP server, Redis,
a database), with the sales team synced, one web user per role, and reps who can sign in."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select
from support.platform import Platform

from nurture_mail.auth.accounts import create_user
from nurture_mail.models import Lead

PASSWORD = "reports-test-password"
#: Reps of tests/sales' team file who sign in to the workspace (same email as their rep).
REP_USERS = {"ava@sales.example": "sales", "mo@sales.example": "sales", "ben@sales.example": "sales"}
ROLE_USERS = {"admin@northwind.example": "admin", "marketer@northwind.example": "marketer",
              "viewer@northwind.example": "viewer", "sales@northwind.example": "sales"}


@pytest.fixture
def users(platform, team):
    with platform.svc.db.session() as session:
        for email, role in {**ROLE_USERS, **REP_USERS}.items():
            create_user(session, email, email.split("@")[0].title(), role, platform.clock.now(), password=PASSWORD)
    return platform


def sign_in(client, email: str):
    page = client.get("/signin").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', page)
    response = client.post("/signin", data={"csrf_token": token.group(1), "email": email, "password": PASSWORD})
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    return client


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def lead_id(platform: Platform, email: str) -> int:
    with platform.svc.db.session() as session:
        return session.scalar(select(Lead.id).where(Lead.email == email))


FIT = dict(first_name="Nora", last_name="Quinn", title="Head of Cloud Security", company="Quinn Freight",
           region="EMEA", industry_naics="511210", employees=800, revenue=50_000_000, lead_source="webinar")
