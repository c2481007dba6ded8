"""nurture_mail: content-gap-aware email nurture campaigns."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Flask, current_app

from .clock import Clock
from .config import Config
from .extensions import Services

if TYPE_CHECKING:
    from flask_wtf.csrf import CSRFProtect

__all__ = ["create_app", "create_worker_app", "services", "Config"]


def create_app(config: Config | None = None, clock: Clock | None = None, **services_kwargs: Any) -> Flask:
    """The application factory: nothing heavy happens before it is called."""
    app = create_worker_app(config, clock, **services_kwargs)

    from flask_wtf.csrf import CSRFProtect

    from . import api, auth, bounces, tracking, web

    csrf = CSRFProtect(app)
    auth.init_app(app)
    web.init_app(app)
    tracking.init_app(app)
    bounces.init_app(app)
    api.init_app(app)
    _exempt_from_csrf(app, csrf)
    return app


def create_worker_app(config: Config | None = None, clock: Clock | None = None, **services_kwargs: Any) -> Flask:
    """The app a worker runs jobs in: config and services, no blueprints, API or CSRF.

    Jobs reach their services through ``current_app`` and never serve a request, so a worker
    does not import the web app, the API and their forms and schemas (about a second of CPU
    per process, docs/benchmarks.md); a job needing more imports it when it runs.
    """
    config = config or Config.from_env()
    app = Flask(__name__, instance_path=str(config.instance_path), instance_relative_config=True)
    app.config.update(SECRET_KEY=config.secret_key, NURTURE=config)
    app.extensions["nurture"] = Services(config, clock=clock, **services_kwargs)
    return app


def _exempt_from_csrf(app: Flask, csrf: CSRFProtect) -> None:
    """Every POST/PUT/PATCH/DELETE of the app needs the form's ``csrf_token`` (Flask-WTF), except
    the requests below, which carry no session cookie a forged cross-site form could ride on."""
    from .api import BLUEPRINTS
    from .bounces import webhook
    from .tracking import unsubscribe

    # Bearer-token API routes: authenticated by the Authorization header, never by a cookie.
    for blueprint in BLUEPRINTS:
        csrf.exempt(blueprint)
    # RFC 8058 one-click unsubscribe: the mail provider POSTs without a cookie or a form token.
    csrf.exempt(unsubscribe.one_click)
    # The ESP's event webhook: authenticated by its HMAC signature.
    csrf.exempt(webhook.bp)
    app.extensions["csrf"] = csrf


def services() -> Services:
    """The services of the app in context (a request, a job run by our worker, a CLI command)."""
    return current_app.extensions["nurture"]
