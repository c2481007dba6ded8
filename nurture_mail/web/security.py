"""Response headers of the web UI's pages: a strict Content-Security-Policy (every asset from
this app, no inline script or style), no referrer, no MIME sniffing, no framing by others."""
from __future__ import annotations

from flask import Response

PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'self'"
)
#: The template editor shows the email in ``<iframe sandbox srcdoc>``, which inherits this policy:
#: an email's own inline styles and remote images must show as a mail client would show them;
#: scripts still never run (the sandbox has no allow-scripts, and script-src is 'self').
PREVIEW_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src * data: cid:; "
    "font-src * data:; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'self'"
)


def page_security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", PAGE_CSP)
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
    return response
