"""nurture_mail: content-gap-aware email nurture campaigns."""
from __future__ import annotations

from typing import Any

from flask import Flask, current_app

from .clock import Clock
from .config import Config
from .extensions import Services

__all__ = ["create_app", "services", "Config"]


def create_app(config: Config | None = None, clock: Clock | None = None, **services_kwargs: Any) -> Flask:
    """The application factory: nothing heavy happens before it is called."""
    config = config or Config.from_env()
    app = Flask(__name__, instance_path=str(config.instance_path), instance_relative_config=True)
    app.config.update(SECRET_KEY=config.secret_key, NURTURE=config)
    app.extensions["nurture"] = Services(config, clock=clock, **services_kwargs)

    from . import api, auth, bounces, sales, tracking, web

    auth.init_app(app)
    web.init_app(app)
    tracking.init_app(app)
    bounces.init_app(app)
    sales.init_app(app)
    api.init_app(app)
    return app


def services() -> Services:
    """The services of the app in context (a request, a job run by our worker, a CLI command)."""
    return current_app.extensions["nurture"]
