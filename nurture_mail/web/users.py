"""Users and API tokens for admins: create, change role, deactivate, reset password, tokens.

Every rule (email shape, password length, the last active admin) lives in ``auth.accounts``;
this view only parses the form, calls it and shows the error beside the field it names.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask import session as web_session
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from .. import services
from ..auth import accounts, role_required
from ..exceptions import InvalidInput, NotFound
from ..models import ApiToken, Role, User
from . import errors

bp = Blueprint("users", __name__, url_prefix="/users", template_folder="templates")
errors.install(bp)

# The secret of a token just created, shown once on the next page and then forgotten.
_NEW_TOKEN = "new_api_token"


def _render(status: int = 200, form: dict[str, str] | None = None, errors_: dict[str, str] | None = None,
            ) -> tuple[str, int]:
    svc = services()
    with svc.db.session() as session:
        users = list(session.scalars(select(User).options(selectinload(User.tokens)).order_by(User.email)))
        rows = [{"user": user, "tokens": sorted(user.tokens, key=lambda t: t.id)} for user in users]
        new_token = web_session.pop(_NEW_TOKEN, None)
        page = render_template("users/index.html", rows=rows, roles=[role.value for role in Role],
                               form=form or {}, errors=errors_ or {}, new_token=new_token,
                               now=svc.clock.now())
    return page, status


@bp.get("/")
@role_required("users:manage")
def index() -> ResponseReturnValue:
    return _render()


@bp.post("/")
@role_required("users:manage")
def create() -> ResponseReturnValue:
    form = {key: request.form.get(key, "") for key in ("email", "name", "role", "password")}
    svc = services()
    try:
        with svc.db.session() as session:
            user = accounts.create_user(session, form["email"], form["name"], form["role"], svc.clock.now(),
                                        password=form["password"] or None)
            email = user.email
    except InvalidInput as error:
        return _render(400, form, {error.field or "email": _message(error)})
    flash(f"{email} can now sign in." if form["password"] else f"{email} created (API tokens only).", "success")
    return redirect(url_for(".index"), code=303)


@bp.post("/<int:user_id>")
@role_required("users:manage")
def update(user_id: int) -> ResponseReturnValue:
    """Change the role, (de)activate, or set a new password: one form field per change."""
    changes: dict[str, Any] = {}
    if "role" in request.form:
        changes["role"] = request.form["role"]
    if "active" in request.form:
        changes["active"] = request.form["active"] == "1"
    if "password" in request.form:
        changes["password"] = request.form["password"]
    svc = services()
    try:
        with svc.db.session() as session:
            user = session.get(User, user_id)
            if user is None:
                raise NotFound(f"no user {user_id}")
            user = accounts.update_user(session, user.email, **changes)
            email, role, active = user.email, user.role.value, user.active
    except NotFound as error:
        flash(str(error), "error")
        return redirect(url_for(".index"), code=303)
    except InvalidInput as error:
        flash(f"Nothing changed: {_message(error)}", "error")
        return redirect(url_for(".index"), code=303)
    if "password" in changes:
        flash(f"New password set for {email}.", "success")
    elif "active" in changes:
        flash(f"{email} is {'active again' if active else 'deactivated: signed out and API tokens refused'}.",
              "success")
    else:
        flash(f"{email} is now {role}.", "success")
    return redirect(url_for(".index"), code=303)


@bp.post("/<int:user_id>/tokens")
@role_required("users:manage")
def issue_token(user_id: int) -> ResponseReturnValue:
    svc = services()
    with svc.db.session() as session:
        user = session.get(User, user_id)
        if user is None:
            flash(f"no user {user_id}", "error")
            return redirect(url_for(".index"), code=303)
        issued = accounts.issue_token(session, user, request.form.get("name", ""), svc.clock.now())
        web_session[_NEW_TOKEN] = {"secret": issued.secret, "name": issued.token.name, "email": user.email}
    return redirect(url_for(".index") + "#new-token", code=303)


@bp.post("/tokens/<int:token_id>/revoke")
@role_required("users:manage")
def revoke_token(token_id: int) -> ResponseReturnValue:
    svc = services()
    try:
        with svc.db.session() as session:
            token = accounts.revoke_token(session, str(token_id), svc.clock.now())
            label = f"{token.name} ({token.prefix}…)"
    except (NotFound, InvalidInput) as error:
        flash(str(error), "error")
    else:
        flash(f"Token {label} revoked: it no longer works.", "success")
    return redirect(url_for(".index"), code=303)


def _message(error: InvalidInput) -> str:
    text = str(error)
    prefix = f"{error.field}: " if error.field else ""
    return text[len(prefix):] if prefix and text.startswith(prefix) else text


__all__ = ["bp", "ApiToken"]
