"""Sign-in and sign-out of the web UI (Flask-Login session, Flask-WTF CSRF on both forms)."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from .. import services
from ..auth.accounts import authenticate_password
from ..auth.web import SessionUser
from . import errors

bp = Blueprint("signin", __name__, template_folder="templates")
errors.install(bp)


class SignInForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=320)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=500)])
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
            login_user(session_user, remember=bool(form.remember.data))
            return redirect(target or url_for("home.index"), code=303)
        flash("Wrong email or password.", "error")
        return render_template("signin.html", form=form), 401
    return render_template("signin.html", form=form), 200 if request.method == "GET" else 400


@bp.post("/signout")
def signout() -> ResponseReturnValue:
    logout_user()
    flash("You are signed out.", "info")
    return redirect(url_for("signin.signin"), code=303)
