"""Web UI blueprints, one per area; ``init_app`` registers them all.

Access: every view but sign-in needs a signed-in user whose role grants the view's permission
(``@role_required`` from ``auth``; the table is ``auth/roles.py``).

CSRF: every POST/PUT/PATCH/DELETE to a blueprint listed in ``BLUEPRINTS`` needs the form's
``csrf_token`` (Flask-WTF). Protection is opt-in per blueprint rather than app-wide because
the same app serves endpoints that must never ask for one: the RFC 8058 one-click unsubscribe
(a mail provider's cookie-less POST) and the token-authenticated API.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import (
    Blueprint,
    Flask,
    has_request_context,
    render_template,
    request,
    url_for,
)
from flask_wtf.csrf import CSRFError, CSRFProtect

from ..config import Config

__all__ = ["NAV", "NavItem", "csrf", "init_app"]

csrf = CSRFProtect()


@dataclass(frozen=True)
class NavItem:
    """One entry of the top navigation; ``shown`` decides from the config whether it appears."""

    label: str
    endpoint: str
    shown: Callable[[Config], bool] = lambda config: True
    #: The permission a user needs to see the entry (the view checks it again).
    permission: str | None = None

    @property
    def blueprint(self) -> str:
        return self.endpoint.partition(".")[0]


# The top navigation, in order: a new area adds its line here.
NAV: list[NavItem] = [
    NavItem("Handoffs", "handoffs.index", permission="handoffs:read"),
    NavItem("Reports", "reports.index", permission="reports:read"),
    NavItem("Inbox", "inbox.index", shown=lambda config: config.embedded_smtp, permission="inbox:read"),
]


def _blueprints() -> list[Blueprint]:
    from . import handoffs, home, inbox, reports, sales_nurture, signin

    return [home.bp, inbox.bp, signin.bp, handoffs.bp, reports.bp, sales_nurture.bp]


def init_app(app: Flask) -> None:
    """Register every blueprint of the web UI, its CSRF protection, cookie hardening, the
    sign-in throttle and its navigation."""
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
    _harden_cookies(app)
    csrf.init_app(app)
    blueprints = _blueprints()
    for blueprint in blueprints:
        app.register_blueprint(blueprint)
    protected = {blueprint.name for blueprint in blueprints}

    @app.before_request
    def _protect_web_forms() -> None:
        if request.blueprint in protected:
            csrf.protect()

    app.register_error_handler(CSRFError, _csrf_failed)
    _throttle_signin(app)

    app.context_processor(_navigation)


def _harden_cookies(app: Flask) -> None:
    """Session and remember-me cookies: HttpOnly, SameSite=Lax, Secure when served over https;
    "keep me signed in" lasts 14 days."""
    config: Config = app.extensions["nurture"].config
    secure = config.base_url.lower().startswith("https://")
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=secure,
        REMEMBER_COOKIE_DURATION=timedelta(days=14),
    )


def _throttle_signin(app: Flask) -> None:
    """At most ``SIGNIN_RATE`` sign-in POSTs per client address and typed email (Flask-Limiter, Redis)."""
    from flask_limiter import Limiter

    from ..extensions import redis_url_of
    from . import signin

    url = redis_url_of(app.extensions["nurture"].redis)
    if url.startswith("unix://"):
        url = "redis+unix://" + url[len("unix://"):]
    limiter = Limiter(signin.signin_rate_key, app=app, storage_uri=url, key_prefix="nurture-signin",
                      strategy="moving-window", default_limits=[], headers_enabled=False)
    limiter.limit(signin.SIGNIN_RATE, methods=["POST"],
                  exempt_when=lambda: request.endpoint != "signin.signin")(signin.bp)
    app.extensions["nurture_signin_limiter"] = limiter


def _navigation() -> dict[str, Any]:
    from .. import services

    if not has_request_context():  # a template rendered by a job or a CLI command
        return {"nav_items": []}
    from flask_login import current_user

    config = services().config
    items = [
        {"label": item.label, "url": url_for(item.endpoint), "active": request.blueprint == item.blueprint}
        for item in NAV
        if item.shown(config) and current_user.is_authenticated
        and (item.permission is None or current_user.can(item.permission))
    ]
    return {"nav_items": items}


def _csrf_failed(error: CSRFError) -> tuple[str, int]:
    return (
        render_template(
            "error.html",
            title="This form has expired",
            message="The page was open too long or came from another site, so nothing was changed. "
            "Go back, reload the page and try again.",
            detail=error.description,
        ),
        400,
    )
