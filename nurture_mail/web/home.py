"""The dashboard (``/``) and the web UI's static assets (one stylesheet, one script, no CDN)."""
from __future__ import annotations

import hashlib

from flask import Blueprint, render_template

from .. import services
from ..auth import role_required
from . import errors
from .dashboard import overview

bp = Blueprint(
    "home",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/assets",
)
errors.install(bp)


@bp.get("/")
@role_required("leads:read")
def index() -> str:
    svc = services()
    captured = None
    if svc.config.embedded_smtp:
        from .inbox import capture_store

        captured = capture_store().count()
    with svc.db.session() as session:
        scope = hashlib.sha256(svc.config.database_url.encode()).hexdigest()[:12]
        data = overview(session, svc.clock.now(), cache=svc.redis, cache_scope=scope)
    return render_template("home.html", captured=captured, o=data)
