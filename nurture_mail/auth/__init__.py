"""Users, roles, passwords, API tokens, and the checks that guard every view and API route.

- ``roles``: the one permission table (UI and API);
- ``accounts``: users and hashed API tokens (no Flask, used by the CLI too);
- ``web``: Flask-Login session users and ``@role_required`` for views.
"""
from __future__ import annotations

from flask import Flask

from .roles import PERMISSIONS, ROLE_PERMISSIONS, allowed
from .web import SessionUser, login_manager, role_required

__all__ = ["PERMISSIONS", "ROLE_PERMISSIONS", "SessionUser", "allowed", "init_app", "login_manager", "role_required"]


def init_app(app: Flask) -> None:
    """Install sign-in for the web UI (token authentication is installed by ``api``)."""
    from .web import init_login

    init_login(app)
