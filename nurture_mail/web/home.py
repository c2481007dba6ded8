"""The home page and the web UI's static assets (one stylesheet, no CDN)."""
from __future__ import annotations

from flask import Blueprint, render_template

from .. import services
from ..auth import role_required
from . import errors

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
    captured = None
    if services().config.embedded_smtp:
        from .inbox import capture_store

        captured = capture_store().count()
    return render_template("home.html", captured=captured)
