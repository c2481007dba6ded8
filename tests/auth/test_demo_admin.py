"""``make run`` (run --demo) prints a working demo admin password and API token."""
from __future__ import annotations

import re

from nurture_mail.runtime import DEMO_ADMIN, seed_demo_admin


def test_demo_admin_can_sign_in_and_use_the_api(make_app, sqlite_url) -> None:
    app = make_app(sqlite_url)
    first = seed_demo_admin(app)
    second = seed_demo_admin(app)  # a restart: new password and token, the old token revoked
    password = re.search(rf"as {re.escape(DEMO_ADMIN)} / (\S+);", second).group(1)
    old_token = re.search(r"API token: (\S+)", first).group(1)
    token = re.search(r"API token: (\S+)", second).group(1)
    client = app.test_client()
    assert client.get("/api/v1/campaigns", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert client.get("/api/v1/campaigns", headers={"Authorization": f"Bearer {old_token}"}).status_code == 401
    page = client.get("/signin").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    response = client.post("/signin", data={"csrf_token": csrf, "email": DEMO_ADMIN, "password": password})
    assert response.status_code == 303
    assert client.get("/").status_code == 200


def test_demo_admin_is_an_active_admin_again_after_a_restart(make_app, sqlite_url) -> None:
    from sqlalchemy import select

    from nurture_mail.models import Role, User

    app = make_app(sqlite_url)
    seed_demo_admin(app)
    with app.extensions["nurture"].db.session() as session:
        user = session.scalar(select(User).where(User.email == DEMO_ADMIN))
        user.active = False
        user.role = Role.viewer
    token = re.search(r"API token: (\S+)", seed_demo_admin(app)).group(1)
    with app.extensions["nurture"].db.session() as session:
        user = session.scalar(select(User).where(User.email == DEMO_ADMIN))
        assert user.active is True and user.role == Role.admin
    response = app.test_client().post("/api/v1/leads", headers={"Authorization": f"Bearer {token}"},
                                      json={"email": "demo@example.com"})
    assert response.status_code == 201, response.get_json()
