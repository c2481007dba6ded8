"""Click and open endpoints: verify the token, buffer one event in Redis, answer.

``GET /c/<token>`` redirects (302) to the URL signed into the token, which is a URL the email
contained, and nothing else: a tampered, truncated or foreign token gets a 404 page, never a
redirect. ``HEAD`` answers the same headers and is recorded as a machine's hit.
``GET /o/<token>.gif`` is the open pixel: a 1×1 transparent GIF that no cache may keep.

No database here: the request path costs one HMAC check and one ``RPUSH`` (DESIGN §9); the
drain (``tracking/ingest.py``) classifies bots and stores events in batches.
"""
from __future__ import annotations

import base64
import logging
from dataclasses import dataclass

from flask import Blueprint, Flask, Request, Response, current_app, request
from werkzeug.urls import iri_to_uri

from ..extensions import Services
from .events import EventBuffer, TrackedHit, new_uid
from .tokens import TokenError, Tokens

log = logging.getLogger(__name__)

bp = Blueprint("clicks", __name__)

#: A 1×1 transparent GIF (42 bytes; colour 0 transparent).
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")

NO_STORE = {
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0, private",
    "Pragma": "no-cache",
    "Expires": "0",
}
#: The token in the tracking URL must not leak to the site the reader lands on.
REDIRECT_HEADERS = {**NO_STORE, "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex, nofollow"}

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="robots" content="noindex">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>
<style>body{{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#1f2933;
max-width:36rem;margin:4rem auto;padding:0 1rem;line-height:1.5}}h1{{font-size:1.4rem}}</style>
</head><body><h1>{title}</h1><p>{message}</p></body></html>
"""
INVALID_LINK_PAGE = _PAGE.format(
    title="This link is not valid",
    message="The link you followed is incomplete or has been changed, so it leads nowhere. "
            "If you copied it from an email, please open the email and click the link there.",
)
HONEYPOT_PAGE = _PAGE.format(title="Nothing here", message="There is nothing at this address.")


@dataclass
class _Tracking:
    """Per-app state of the endpoints, built on the first hit (after a gunicorn fork)."""

    svc: Services
    tokens: Tokens
    buffer: EventBuffer
    proxy_hops: int


def _tracking() -> _Tracking:
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    state = app.extensions.get("nurture.tracking")
    if state is None:
        svc: Services = app.extensions["nurture"]
        state = _Tracking(svc, Tokens.from_config(svc.config), EventBuffer(svc.redis), svc.config.tracking_proxy_hops)
        app.extensions["nurture.tracking"] = state
    return state


# merge_slashes off: "/c//evil.example" must be a 404, not a redirect to "/c/evil.example".
@bp.route("/c/<token>", methods=["GET"], merge_slashes=False)
def click(token: str) -> Response:
    tracking = _tracking()
    try:
        target = tracking.tokens.read_click(token)
    except TokenError:
        return Response(INVALID_LINK_PAGE, 404, NO_STORE, content_type="text/html; charset=utf-8")
    _record(tracking, "click", target.delivery_id, target.link_id, target.url, target.honeypot)
    if target.url is None:  # the honeypot: only a machine follows a link nobody can see
        return Response(HONEYPOT_PAGE, 200, REDIRECT_HEADERS, content_type="text/html; charset=utf-8")
    response = Response(status=302, headers=REDIRECT_HEADERS)
    # Set verbatim: the URL was validated when signed and again when read (tokens.is_safe_target);
    # a non-ASCII one (an IRI) is sent in its URI form, as HTTP headers require.
    response.headers["Location"] = target.url if target.url.isascii() else iri_to_uri(target.url)
    return response


@bp.route("/o/<token>", methods=["GET"], merge_slashes=False)
def open_pixel(token: str) -> Response:
    tracking = _tracking()
    try:
        if not token.endswith(".gif"):  # only the pixel's own URL counts (docs/tracking.md)
            raise TokenError("not an open pixel URL")
        delivery_id = tracking.tokens.read_open(token[:-4])
    except TokenError:
        return Response(PIXEL, 404, NO_STORE, content_type="image/gif")
    _record(tracking, "open", delivery_id, None, None, False)
    return Response(PIXEL, 200, NO_STORE, content_type="image/gif")


@bp.route("/o/<path:rest>", methods=["GET"], merge_slashes=False)
def not_a_pixel(rest: str) -> Response:
    """Anything else under ``/o/`` (a nested path): the same 404 GIF as a bad token."""
    return Response(PIXEL, 404, NO_STORE, content_type="image/gif")


def _record(tracking: _Tracking, kind: str, delivery_id: int, link_id: int | None, url: str | None,
            honeypot: bool) -> None:
    hit = TrackedHit(
        uid=new_uid(), kind=kind, delivery_id=delivery_id, link_id=link_id, url=url, honeypot=honeypot,
        at=tracking.svc.clock.now().timestamp(), method=request.method,
        user_agent=(request.headers.get("User-Agent") or "")[:500], ip=client_ip(request, tracking.proxy_hops),
    )
    try:
        tracking.buffer.push(hit)
    except Exception:
        # The reader still gets where they were going; the lost event is logged, not hidden.
        log.exception("tracking event lost (Redis unavailable): %s", hit.to_json())


def client_ip(req: Request, proxy_hops: int) -> str | None:
    """The client's address; behind ``proxy_hops`` trusted proxies, from X-Forwarded-For."""
    if proxy_hops > 0:
        forwarded = [part.strip() for part in req.headers.get("X-Forwarded-For", "").split(",") if part.strip()]
        if len(forwarded) >= proxy_hops:
            return forwarded[-proxy_hops][:64]
    return req.remote_addr
