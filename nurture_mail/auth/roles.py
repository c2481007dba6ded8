"""The one permission table: which role may do what, read by the web UI and the API alike.

A view or an API route names a permission (``"leads:write"``), never a role, so widening or
narrowing a role is a one-line change here and both front doors follow it.
"""
from __future__ import annotations

from ..models import Role

__all__ = ["PERMISSIONS", "ROLE_PERMISSIONS", "allowed", "roles_with"]

#: Every permission with what it lets a user do (shown in docs/api.md).
PERMISSIONS: dict[str, str] = {
    "leads:read": "read leads, their scores, enrollments and timeline",
    "leads:write": "create, upsert and update leads",
    "leads:erase": "erase a lead's personal data (GDPR)",
    "enrollments:write": "enroll a lead, pause, resume or exit an enrollment",
    "campaigns:read": "list campaigns and preview a lead's journey",
    "campaigns:write": "edit campaign files and email templates, send test emails, pause and resume campaigns",
    "events:write": "ingest external events (form, webinar, reply, meeting)",
    "imports:read": "see import jobs and download their reports",
    "imports:write": "upload CSV imports",
    "handoffs:read": "list and read sales handoffs",
    "handoffs:act": "accept, reject, win or lose a handoff; hand a lead back to nurture",
    "inbox:read": "read the capture inbox (embedded SMTP mode)",
    "inbox:clear": "delete every message of the capture inbox",
    "users:manage": "create users and API tokens",
    "reports:read": "read the reports and their CSV exports; subscribe to the monthly summary",
    "reports:send": "send the monthly summary report to its subscribers now",
    "availability:write": "mark oneself away (routing skips the rep until the end date)",
    "suppressions:write": "add an address to the suppression list by hand",
    "suppressions:remove": "lift a suppression (with a recorded reason)",
}

_READ = {"leads:read", "campaigns:read", "imports:read", "handoffs:read", "inbox:read", "reports:read"}

ROLE_PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.admin: frozenset(PERMISSIONS),
    Role.marketer: frozenset(_READ | {"leads:write", "enrollments:write", "events:write", "imports:write",
                                      "inbox:clear", "campaigns:write", "reports:send", "suppressions:write"}),
    Role.sales: frozenset(_READ - {"imports:read"} | {"handoffs:act", "availability:write"}),
    Role.viewer: frozenset(_READ),
}


def allowed(role: Role | str | None, permission: str) -> bool:
    """Whether ``role`` grants ``permission``; an unknown permission is a programming error."""
    if permission not in PERMISSIONS:
        raise KeyError(f"unknown permission {permission!r}")
    if role is None:
        return False
    return permission in ROLE_PERMISSIONS.get(Role(role), frozenset())


def roles_with(permission: str) -> list[str]:
    """The roles granting ``permission``, for error messages and documentation."""
    return [role.value for role in Role if allowed(role, permission)]
