"""The workspace pages on both databases (their aggregate SQL differs by dialect), and the
forms that change state through the domain services: suppressions, users and API tokens, bulk
actions on leads."""
from __future__ import annotations

import re

from sqlalchemy import select

from nurture_mail.auth.accounts import user_for_token
from nurture_mail.models import Enrollment, EnrollmentState, Lead, Suppression, SuppressionRemoval

from .conftest import sign_in
from .workspace import NORA, lead_id, seed


def csrf(client, path: str = "/") -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


def test_pages_render_with_their_figures(platform, tmp_path):
    seed(platform, tmp_path)
    client = sign_in(platform.app.test_client(), "viewer")
    home = client.get("/").get_data(as_text=True)
    assert re.search(r"Emails sent \(30 d\)</span>\s*<span class=\"stat-value\">2<", home)  # Chicago is not in its window yet
    leads = client.get("/leads/").get_data(as_text=True)
    assert leads.count("data-lead=") == 5
    assert client.get("/leads/?q=nora+qu").get_data(as_text=True).count("data-lead=") == 1
    assert client.get("/leads/?q=harbor").get_data(as_text=True).count("data-lead=") == 1
    flagged = client.get("/leads/?hygiene=flagged").get_data(as_text=True)
    assert flagged.count("data-lead=") == 1 and "info@rivetworks.example" in flagged
    enrolled = client.get("/leads/?campaign=northwind-security&status=nurturing").get_data(as_text=True)
    assert enrolled.count("data-lead=") == 3
    bad = client.get("/leads/?engagement_min=lots&updated_since=yesterday")
    assert bad.status_code == 400
    assert "not a number" in bad.get_data(as_text=True) and "not a date" in bad.get_data(as_text=True)
    page = client.get(f"/leads/{lead_id(platform, NORA)}").get_data(as_text=True)
    assert 'data-topic="cloud-risk-landscape" data-level="exposed"' in page
    assert "Budget" in page and "approved for Q3" in page  # a known qualification attribute
    assert "Nora, the 5 cloud risks" in page  # the subject as the lead read it
    # A viewer is shown no action it may not take.
    assert "Hand to sales" not in page and "Pause" not in page


def test_keyset_pages_cover_every_lead_once(platform, tmp_path):
    seed(platform, tmp_path)
    client = sign_in(platform.app.test_client(), "viewer")
    platform.app.config["LEADS_PAGE_SIZE"] = 2
    seen, path = [], "/leads/"
    while path:
        html = client.get(path).get_data(as_text=True)
        seen += re.findall(r'data-lead="([^"]+)"', html)
        found = re.search(r'href="(/leads/\?cursor=[^"]+)" rel="next"', html)
        path = found.group(1).replace("&amp;", "&") if found else None
    assert len(seen) == 5 and len(set(seen)) == 5


def test_bulk_pause_then_enroll(platform, tmp_path):
    seed(platform, tmp_path)
    client = sign_in(platform.app.test_client(), "marketer")
    with platform.svc.db.session() as session:
        ids = dict(session.execute(select(Lead.email, Lead.id)).tuples().all())
    token = csrf(client, "/leads/")
    response = client.post("/leads/bulk", data={"csrf_token": token, "action": "pause", "campaign": "",
                                                "ids": [ids[NORA], ids["priya@tallyhealth.example"]]})
    assert response.status_code == 303
    with platform.svc.db.session() as session:
        states = dict(session.execute(select(Enrollment.lead_id, Enrollment.state)).tuples().all())
    assert states[ids[NORA]] == states[ids["priya@tallyhealth.example"]] == EnrollmentState.paused
    assert states[ids["liam@harborbank.example"]] == EnrollmentState.active
    response = client.post("/leads/bulk", follow_redirects=True, data={
        "csrf_token": token, "action": "enroll", "campaign": "northwind-security",
        "ids": [ids["omar@brightlane.example"], ids["info@rivetworks.example"]]})
    text = response.get_data(as_text=True)
    assert "1 lead enrolled" in text and "info@rivetworks.example" in text  # the flagged one is refused


def test_suppress_by_hand_and_lift_with_a_reason(platform, tmp_path):
    seed(platform, tmp_path)
    marketer = sign_in(platform.app.test_client(), "marketer")
    token = csrf(marketer, "/suppressions/")
    bad = marketer.post("/suppressions/", data={"csrf_token": token, "email": "not an address"})
    assert bad.status_code == 400 and "not an email address" in bad.get_data(as_text=True)
    assert marketer.post("/suppressions/", data={"csrf_token": token, "email": "Priya@TallyHealth.example",
                                                 "scope": "*", "detail": "asked by phone"}).status_code == 303
    with platform.svc.db.session() as session:
        row = session.scalar(select(Suppression).where(Suppression.email == "priya@tallyhealth.example"))
        assert row.reason == "manual" and "marketer@northwind.example" in row.detail
        priya = session.scalar(select(Lead).where(Lead.email == "priya@tallyhealth.example"))
        assert session.scalar(select(Enrollment.state).where(Enrollment.lead_id == priya.id)) == EnrollmentState.exited
        suppression_id = row.id
    # Only an admin lifts one, and only with a reason.
    assert marketer.post(f"/suppressions/{suppression_id}/remove",
                         data={"csrf_token": token, "reason": "x"}).status_code == 403
    admin = sign_in(platform.app.test_client(), "admin")
    token = csrf(admin, "/suppressions/")
    admin.post(f"/suppressions/{suppression_id}/remove", data={"csrf_token": token, "reason": "  "})
    with platform.svc.db.session() as session:
        assert session.get(Suppression, suppression_id) is not None
    admin.post(f"/suppressions/{suppression_id}/remove", data={"csrf_token": token, "reason": "re-subscribed"})
    with platform.svc.db.session() as session:
        assert session.get(Suppression, suppression_id) is None
        [removal] = session.scalars(select(SuppressionRemoval)).all()
        assert (removal.email, removal.reason, removal.removed_by, removal.removed_reason) == (
            "priya@tallyhealth.example", "manual", "admin@northwind.example", "re-subscribed")


def test_users_and_api_tokens(platform, tmp_path):
    seed(platform, tmp_path)
    admin = sign_in(platform.app.test_client(), "admin")
    token = csrf(admin, "/users/")
    short = admin.post("/users/", data={"csrf_token": token, "email": "kim@northwind.example", "name": "Kim",
                                        "role": "marketer", "password": "short"})
    assert short.status_code == 400 and "at least 10 characters" in short.get_data(as_text=True)
    assert admin.post("/users/", data={"csrf_token": token, "email": "kim@northwind.example", "name": "Kim",
                                       "role": "marketer", "password": "kim-password-1"}).status_code == 303
    with platform.svc.db.session() as session:
        from nurture_mail.models import User
        kim = session.scalar(select(User).where(User.email == "kim@northwind.example"))
        kim_id = kim.id
    admin.post(f"/users/{kim_id}/tokens", data={"csrf_token": token, "name": "crm-sync"})
    page = admin.get("/users/").get_data(as_text=True)
    secret = re.search(r'data-testid="new-token">(nm_[^<]+)<', page).group(1)
    assert secret not in admin.get("/users/").get_data(as_text=True)  # shown once
    with platform.svc.db.session() as session:
        assert user_for_token(session, secret, platform.clock.now()).email == "kim@northwind.example"
        from nurture_mail.models import ApiToken
        token_id = session.scalar(select(ApiToken.id).where(ApiToken.user_id == kim_id))
    admin.post(f"/users/tokens/{token_id}/revoke", data={"csrf_token": token})
    admin.post(f"/users/{kim_id}", data={"csrf_token": token, "role": "viewer"})
    with platform.svc.db.session() as session:
        assert user_for_token(session, secret, platform.clock.now()) is None
        assert session.get(User, kim_id).role.value == "viewer"
    # The last active admin cannot deactivate themselves (the rule of auth.accounts).
    with platform.svc.db.session() as session:
        me = session.scalar(select(User.id).where(User.email == "admin@northwind.example"))
    response = admin.post(f"/users/{me}", data={"csrf_token": token, "active": "0"}, follow_redirects=True)
    assert "last active admin" in response.get_data(as_text=True)
