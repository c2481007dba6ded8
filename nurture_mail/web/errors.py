"""Error pages of the web UI, registered on each of its blueprints (the API has problem+json)."""
from __future__ import annotations

from flask import Blueprint, render_template


def forbidden(error: Exception) -> tuple[str, int]:
    return (
        render_template(
            "error.html",
            title="Not allowed",
            message="Your role does not allow this page or action. Ask an admin if you need it.",
            detail=None,
        ),
        403,
    )


def install(bp: Blueprint) -> Blueprint:
    bp.register_error_handler(403, forbidden)
    return bp
