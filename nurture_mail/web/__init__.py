"""Web UI blueprints, one module per area; ``init_app`` registers every module's ``bp``.

Access: every view but sign-in needs a signed-in user whose role grants the view's permission
(``@role_required`` from ``auth``; the table is ``auth/roles.py``).

CSRF: the app's ``CSRFProtect`` (``create_app``) checks the form's ``csrf_token`` on every
POST/PUT/PATCH/DELETE, with its exemptions listed there; a failed check renders the error page
registered here. The pages behind a sales notification's signed links (``sales_links``) need
no sign-in: their token names the rep.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    has_request_context,
    render_template,
    request,
    url_for,
)
from flask_wtf.csrf import CSRFError

from ..config import Config
from . import formatting

__all__ = ["CSP", "NAV", "NavItem", "asset_url", "init_app"]


@dataclass(frozen=True)
class NavItem:
    """One entry of the navigation.

    The entry appears when its endpoint is registered (an area not merged yet is hidden), when
    ``shown`` accepts the config, and when the signed-in user's role grants the permission the
    view itself declares with ``@role_required`` (read from the view, never repeated here).
    """

    label: str
    endpoint: str
    section: str
    icon: str
    shown: Callable[[Config], bool] = lambda config: True

    @property
    def blueprint(self) -> str:
        return self.endpoint.partition(".")[0]


# The navigation, in order and by section: a new area adds its line here. ``icon`` names a
# symbol of ``templates/macros/icons.html``.
NAV: list[NavItem] = [
    NavItem("Dashboard", "home.index", "Marketing", "home"),
    NavItem("Campaigns", "campaigns.index", "Marketing", "campaign"),
    NavItem("Leads", "leads.index", "Marketing", "users"),
    NavItem("Imports", "imports.index", "Marketing", "upload"),
    NavItem("Suppressions", "suppressions.index", "Marketing", "block"),
    NavItem("Handoffs", "handoffs.index", "Sales", "handoff"),
    NavItem("Reports", "reports.index", "Sales", "chart"),
    NavItem("Inbox", "inbox.index", "Tools", "inbox", shown=lambda config: config.embedded_smtp),
    NavItem("Users", "users.index", "Admin", "key"),
]

#: The Content-Security-Policy of every page that does not set its own (the inbox does, to
#: show emails in a sandboxed frame): nothing from another host, no inline script or style.
CSP = (
    "default-src 'self'; "
    "script-src 'self'; "
    "style-src 'self'; "
    "img-src 'self' data:; "
    "object-src 'none'; "
    "base-uri 'self'; "
    "form-action 'self'; "
    "frame-ancestors 'none'"
)


def _blueprints() -> list[Blueprint]:
    """Every ``bp`` of a module of this package (one module per area), sorted by module name.

    An area is added by adding its module; nothing else to edit.
    """
    import importlib
    import pkgutil

    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        bp = getattr(module, "bp", None)
        if isinstance(bp, Blueprint):
            found.append(bp)
    return found


def init_app(app: Flask) -> None:
    """Register every blueprint of the web UI, the page of a failed CSRF check, cookie hardening,
    the sign-in throttle and its navigation."""
    _harden_cookies(app)
    for blueprint in _blueprints():
        app.register_blueprint(blueprint)
    app.register_error_handler(CSRFError, _csrf_failed)
    _throttle_signin(app)

    app.context_processor(_navigation)
    app.jinja_env.globals["asset_url"] = asset_url
    formatting.init_app(app)
    app.after_request(_security_headers)


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
        return {"nav_items": [], "nav_sections": [], "view_names": {}}
    from flask_login import current_user

    # ``'leads.show' in view_names``: link to an area only once it is there.
    if not current_user.is_authenticated:
        return {"nav_items": [], "nav_sections": [], "view_names": current_app.view_functions}
    config = services().config
    views = current_app.view_functions
    items = []
    for item in NAV:
        view = views.get(item.endpoint)
        if view is None or not item.shown(config):
            continue
        permission = getattr(view, "required_permission", None)
        if permission is not None and not current_user.can(permission):
            continue
        items.append({"label": item.label, "url": url_for(item.endpoint), "icon": item.icon,
                      "section": item.section, "active": request.blueprint == item.blueprint})
    sections: list[dict[str, Any]] = []
    for entry in items:
        if not sections or sections[-1]["name"] != entry["section"]:
            sections.append({"name": entry["section"], "items": []})
        sections[-1]["items"].append(entry)
    return {"nav_items": items, "nav_sections": sections, "view_names": current_app.view_functions}


def asset_url(filename: str) -> str:
    """The URL of a file of ``web/static`` with its content checksum, so it can be cached forever."""
    digests: dict[str, str] = current_app.extensions.setdefault("nurture_asset_digests", {})
    digest = digests.get(filename)
    if digest is None or current_app.debug:
        path = Path(current_app.blueprints["home"].static_folder or "", filename)
        digest = digests[filename] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return url_for("home.static", filename=filename, v=digest)


def _security_headers(response: Response) -> Response:
    """Strict CSP and companions on every page (a view may set its own CSP first)."""
    if response.mimetype == "text/html":
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.endpoint == "home.static" and request.args.get("v"):
        response.cache_control.public = True
        response.cache_control.max_age = 31536000
        response.cache_control.immutable = True
    return response


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
