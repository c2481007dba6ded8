"""The pages behind the signed links of a handoff notification.

- ``GET /sales/handoffs/<token>`` shows the dossier summary and the forms (accept, reject as
  not ready / bad fit with a reason, won with a value, lost with a reason). A GET never acts:
  mail scanners and link previews fetch every URL in an email.
- ``POST /sales/handoffs/<token>/<action>`` acts, with the form's CSRF token (the app's CSRFProtect),
  recorded with ``actor=<rep email>`` and ``via="email-link"``, then redirects to the page.

The token names the handoff and the rep; a tampered one gets a clean 400 page, a rep who no
longer holds the handoff (transferred away) a 403 page.
"""
from __future__ import annotations

from flask import Blueprint, Response, flash, make_response, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import services
from ..models import Handoff, HandoffAssignment, HandoffState, Lead, SalesRep
from ..sales import actions
from ..sales.links import LinkError, LinkExpired, SalesLinks

bp = Blueprint("sales", __name__)

VIA = "email-link"
ACTIONS = ("accept", "reject", "won", "lost")


class PageError(Exception):
    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


def _resolve(session: Session, token: str) -> tuple[Handoff, SalesRep, Lead]:
    try:
        svc = services()
        link = SalesLinks(svc.config, svc.clock).read(token)
    except LinkExpired:
        raise PageError(410, "This link has expired",
                        "Handoff links stop working after the ownership window. Use the latest notification "
                        "email, or act on the handoff in the web app or the API.") from None
    except LinkError:
        raise PageError(400, "This link is not valid",
                        "The handoff link is incomplete or was changed. Open it again from the notification "
                        "email.") from None
    handoff = session.get(Handoff, link.handoff_id)
    rep = session.get(SalesRep, link.rep_id)
    if handoff is None or rep is None:
        raise PageError(404, "Handoff not found", "This handoff or rep no longer exists.")
    holds = handoff.rep_id == rep.id or session.scalar(
        select(HandoffAssignment.id).where(HandoffAssignment.handoff_id == handoff.id,
                                           HandoffAssignment.rep_id == rep.id,
                                           HandoffAssignment.ended_at.is_(None)).limit(1)) is not None
    if not holds:
        raise PageError(403, "This handoff has moved on",
                        f"Handoff #{handoff.id} is no longer assigned to {rep.email}, so this link cannot act on it.")
    return handoff, rep, session.get_one(Lead, handoff.lead_id)


def _page(template: str, status: int = 200, **context) -> Response:
    response = make_response(render_template(template, **context), status)
    # The token in the URL acts for a rep: keep it out of caches, referrers and indexes.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _signed_in_as(rep: SalesRep) -> bool:
    from flask_login import current_user

    return bool(current_user and current_user.is_authenticated
                and current_user.email.strip().lower() == rep.email.strip().lower()
                and current_user.can("handoffs:act"))


def _error(error: PageError) -> Response:
    return _page("error.html", error.status, title=error.title, message=error.message, detail=None)


@bp.get("/sales/handoffs/<token>")
def page(token: str) -> ResponseReturnValue:
    """Shows the handoff and the forms; changes nothing."""
    with services().db.Session() as session:
        try:
            handoff, rep, lead = _resolve(session, token)
        except PageError as error:
            return _error(error)
        if _signed_in_as(rep):
            # The rep is signed in to the workspace: the full page, the emailed choice highlighted.
            chosen = request.args.get("do", "")
            return redirect(url_for("handoffs.show", handoff_id=handoff.id,
                                    do=chosen if chosen in ACTIONS else None) + "#actions", code=303)
        return _page("sales/handoff.html", token=token, handoff=handoff, rep=rep, lead=lead,
                     dossier=handoff.dossier or {}, states=HandoffState,
                     chosen=request.args.get("do", ""), open=handoff.state in (HandoffState.notified,
                                                                             HandoffState.accepted))


@bp.post("/sales/handoffs/<token>/<action>")
def act(token: str, action: str) -> ResponseReturnValue:
    if action not in ACTIONS:
        return _error(PageError(404, "No such action", f"{action!r} is not something a handoff can do."))
    svc = services()
    now = svc.clock.now()
    form = request.form
    try:
        with svc.db.session() as session:
            handoff, rep, _ = _resolve(session, token)
            if action == "accept":
                actions.accept(session, handoff, rep.email, VIA, now)
                message = "Accepted: the lead is yours. Good luck on the call."
            elif action == "reject":
                actions.reject(session, svc, handoff, rep.email, VIA, form.get("kind", ""), form.get("reason", ""),
                               now)
                message = ("Rejected as not ready: the lead is back in nurture." if handoff.reject_kind == "not_ready"
                           else "Rejected as a bad fit: the lead is disqualified and gets no more email.")
            elif action == "won":
                actions.mark_won(session, handoff, rep.email, VIA, form.get("value", ""), now)
                message = f"Marked won ({handoff.deal_value:,.2f}). Congratulations!"
            else:
                actions.mark_lost(session, handoff, rep.email, VIA, form.get("reason", ""), now)
                message = "Marked lost."
    except PageError as error:
        return _error(error)
    except actions.HandoffActionError as error:
        flash(str(error), "error")
        return redirect(url_for("sales.page", token=token), code=303)
    flash(message, "success")
    return redirect(url_for("sales.page", token=token), code=303)
