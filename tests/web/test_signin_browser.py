"""Sign-in in a real browser (Debian Chromium via Playwright): the form, the redirect, sign-out."""
from __future__ import annotations

import re

from .conftest import password_of


def test_sign_in_and_out_in_the_browser(page, live_server: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{live_server}/inbox/")
    expect(page).to_have_url(re.compile(r"/signin\?next=%2Finbox%2F$"))
    expect(page.get_by_text("Please sign in to see this page.")).to_be_visible()

    page.get_by_label("Email").fill("viewer@northwind.example")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Wrong email or password.")).to_be_visible()

    page.get_by_label("Email").fill("viewer@northwind.example")
    page.get_by_label("Password").fill(password_of("viewer"))
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{live_server}/inbox/")  # back where the user was going
    expect(page.get_by_test_id("signed-in-as")).to_contain_text("Viewer")

    # A viewer may read the inbox but is not offered to clear it.
    expect(page.get_by_test_id("message-count")).to_be_visible()
    expect(page.get_by_role("button", name="Clear inbox")).to_have_count(0)

    page.goto(f"{live_server}/")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    page.goto(f"{live_server}/")
    expect(page).to_have_url(re.compile(r"/signin\?next=%2F$"))
