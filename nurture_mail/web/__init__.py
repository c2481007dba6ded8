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
    NavItem("Inbox", "inbox.index", shown=lambda config: config.embedded_smtp, permission="inbox:read"),
]


def _blueprints() -> list[Blueprint]:
    from . import home, inbox, signin

    return [home.bp, inbox.bp, signin.bp]


def init_app(app: Flask) -> None:
    """Register every blueprint of the web UI, its CSRF protection and its navigation."""
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
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

    app.context_processor(_navigation)


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
