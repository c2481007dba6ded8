"""Sign-in and sign-out of the web UI (Flask-Login session, Flask-WTF CSRF on both forms)."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask import session as flask_session
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField
from wtforms.validators import DataRequired, Length, ValidationError

from .. import services
from ..auth.accounts import authenticate_password
from ..auth.web import SessionUser
from . import errors

bp = Blueprint("signin", __name__, template_folder="templates")
errors.install(bp)


#: Sign-in attempts (POST) per minute for one address from one client: brute force is throttled.
SIGNIN_RATE = "10/minute"


def _no_nul(form: FlaskForm, field) -> None:
    """No NUL character: PostgreSQL refuses it in a query (a 500 otherwise)."""
    if field.data and "\x00" in field.data:
        raise ValidationError("contains a NUL character")


class SignInForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=320), _no_nul])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=500), _no_nul])
    remember = BooleanField("Keep me signed in on this device")


def safe_next(target: str | None) -> str | None:
    """``target`` when it is a path on this site, else None: no open redirect via ``?next=``."""
    if not target or "\\" in target or any(ord(c) < 32 for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


@bp.route("/signin", methods=["GET", "POST"])
def signin() -> ResponseReturnValue:
    target = safe_next(request.args.get("next"))
    if current_user.is_authenticated:
        return redirect(target or url_for("home.index"))
    form = SignInForm()
    if form.validate_on_submit():
        with services().db.session() as session:
            user = authenticate_password(session, form.email.data or "", form.password.data or "")
            session_user = SessionUser.of(user) if user is not None else None
        if session_user is not None:
            flask_session.clear()  # nothing from before sign-in (a planted session) survives it
            login_user(session_user, remember=bool(form.remember.data))
            return redirect(target or url_for("home.index"), code=303)
        flash("Wrong email or password.", "error")
        return render_template("signin.html", form=form), 401
    return render_template("signin.html", form=form), 200 if request.method == "GET" else 400


def signin_rate_key() -> str:
    """The throttle bucket of a sign-in attempt: the client's address and the address typed."""
    email = (request.form.get("email") or "").strip().lower()[:320]
    return f"signin:{request.remote_addr or '-'}:{email}"


@bp.post("/signout")
def signout() -> ResponseReturnValue:
    logout_user()
    flash("You are signed out.", "info")
    return redirect(url_for("signin.signin"), code=303)
