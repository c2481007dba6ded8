"""Unsubscribe endpoints: RFC 8058 one-click, and the page behind the link in every footer.

- ``POST /u/<token>`` is the one-click unsubscribe a mail provider sends from its own
  "Unsubscribe" button: body ``List-Unsubscribe=One-Click`` (form-urlencoded or multipart), no
  cookies, no login, no CSRF token. It unsubscribes the address from all email at once and
  answers 200 with a short confirmation, never a redirect.
- ``GET /u/<token>`` only shows a page: security scanners and link previews fetch every URL in
  an email, so a GET never changes anything. The page offers "this campaign only" or "all
  email", posted to ``POST /u/<token>/confirm``, which is an ordinary CSRF-protected form.

The token (itsdangerous, signed with SECRET_KEY) names the delivery and the lead; a tampered
or truncated token gets a 400 page. This blueprint is not in the web UI's CSRF-protected list
(``web/__init__.py``); only the confirm view asks for a token, itself.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, Response, make_response, render_template, request
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import services
from ..models import ALL_EMAIL, Campaign, Delivery, Enrollment, Lead
from ..nurture.suppression import suppression_scopes, unsubscribe
from .clicks import client_ip
from .tokens import TokenError, Tokens

bp = Blueprint("unsubscribe", __name__, template_folder="templates")

ONE_CLICK_BODY = b"List-Unsubscribe=One-Click"


@dataclass
class Target:
    """Whom a token unsubscribes, and from what."""

    lead: Lead
    delivery_id: int | None
    campaign: Campaign | None


class InvalidLink(Exception):
    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


def resolve(session: Session, token: str) -> Target:
    try:
        delivery_id, lead_id = Tokens.from_config(services().config).read_unsubscribe(token)
    except TokenError:
        raise InvalidLink(400, "This link is not valid",
                          "The unsubscribe link is incomplete or was changed. Open it again from the email, "
                          "or use the unsubscribe button of your mail app.") from None
    lead = session.get(Lead, lead_id)
    if lead is None:
        raise InvalidLink(404, "Nothing to unsubscribe",
                          "We no longer hold this address, so there is nothing to unsubscribe from.")
    row = session.execute(
        select(Delivery.lead_id, Campaign)
        .join(Enrollment, Enrollment.id == Delivery.enrollment_id)
        .join(Campaign, Campaign.id == Enrollment.campaign_id)
        .where(Delivery.id == delivery_id)
    ).first()
    if row is None or row[0] != lead.id:
        # The email's delivery is gone (its campaign was deleted): "all email" still works.
        return Target(lead, None, None)
    return Target(lead, delivery_id, row[1])


def _page(template: str, status: int = 200, **context) -> Response:
    config = services().config
    response = make_response(render_template(f"unsubscribe/{template}", sender=config, **context), status)
    # The token in the URL names a person: keep it out of caches, logs of other sites, indexes.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _invalid(error: InvalidLink) -> Response:
    return _page("invalid.html", error.status, title=error.title, message=error.message)


@bp.get("/u/<token>")
def page(token: str) -> ResponseReturnValue:
    """Shows what an unsubscribe would do; changes nothing (scanners fetch every link)."""
    svc = services()
    with svc.db.Session() as session:
        try:
            target = resolve(session, token)
        except InvalidLink as error:
            return _invalid(error)
        scopes = suppression_scopes(session, [target.lead.email]).get(target.lead.email, set())
        return _page(
            "confirm.html", token=token, email=target.lead.email, campaign=target.campaign,
            unsubscribed_all=ALL_EMAIL in scopes,
            unsubscribed_campaign=target.campaign is not None and target.campaign.slug in scopes,
        )


@bp.post("/u/<token>")
def one_click(token: str) -> ResponseReturnValue:
    """RFC 8058 one-click: from all email, no cookie, no CSRF token (exempted in ``create_app``),
    200 and never a redirect."""
    if request.form.get("List-Unsubscribe") != "One-Click" and request.get_data(cache=True).strip() != ONE_CLICK_BODY:
        return _page("invalid.html", 400, title="Open the link to unsubscribe",
                     message="This address takes the one-click unsubscribe of mail apps (RFC 8058). "
                     "Open the unsubscribe link from the email in your browser instead.")
    return _unsubscribe(token, all_email=True, source="one-click")


@bp.post("/u/<token>/confirm")
def confirm(token: str) -> ResponseReturnValue:
    """The landing page's form: "this campaign only" or "all email" (with the form's CSRF token)."""
    scope = request.form.get("scope", "")
    if scope not in ("campaign", "all"):
        return _page("invalid.html", 400, title="Choose what to unsubscribe from",
                     message="Go back and choose either this campaign only or all email.")
    return _unsubscribe(token, all_email=scope == "all", source="link")


def _unsubscribe(token: str, *, all_email: bool, source: str) -> Response:
    svc = services()
    with svc.db.session() as session:
        try:
            target = resolve(session, token)
        except InvalidLink as error:
            return _invalid(error)
        campaign = None if all_email or target.campaign is None else target.campaign
        unsubscribe(session, target.lead, svc.clock.now(), source=source, campaign=campaign,
                    delivery_id=target.delivery_id, user_agent=request.headers.get("User-Agent"),
                    ip=client_ip(request, svc.config.tracking_proxy_hops))
        return _page("done.html", email=target.lead.email, campaign=campaign)
