"""The web inbox: read what the built-in capture server received (embedded SMTP mode only).

An email's HTML is shown in ``<iframe sandbox srcdoc=…>`` without ``allow-scripts`` or
``allow-same-origin``: its scripts never run and it cannot reach this app's cookies or DOM.
The page's Content-Security-Policy (inherited by the srcdoc frame) forbids scripts as well.

The inbox is a reader, not a prospect: the preview records no open and no click. Every URL
that carries one of our tracking tokens (signature checked) is rewritten before it is shown:
the open pixel becomes an inline transparent GIF, a tracked link goes straight to the URL
signed into it (in the text part too), the hidden honeypot link goes nowhere (``tracking_free``).
"""
from __future__ import annotations

import io
import math
import re
from html import escape

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask.typing import ResponseReturnValue
from werkzeug.utils import secure_filename

from .. import services
from ..auth import role_required
from ..mail.capture import CapturedMessage, CaptureStore
from ..tracking.tokens import TokenError, Tokens
from . import errors

bp = Blueprint("inbox", __name__, url_prefix="/inbox", template_folder="templates")
errors.install(bp)

PAGE_SIZE = 50

# Links in an email open in a new tab, as in a mail client, instead of inside the preview.
_LINK_TARGET = '<base target="_blank">'
_HEAD = re.compile(r"<head\b[^>]*>", re.IGNORECASE)
_DOCTYPE = re.compile(r"\A\s*<!doctype[^>]*>", re.IGNORECASE)

# Inherited by the srcdoc frame: no script from the email runs even if the sandbox were lifted.
# Images and fonts may come from anywhere, as they would in a mail client.
_CSP = (
    "default-src 'self'; "
    "script-src 'none'; "
    "object-src 'none'; "
    "style-src 'self' 'unsafe-inline'; "
    "img-src * data: cid:; "
    "font-src * data:; "
    "media-src *; "
    "form-action 'self'; "
    "frame-ancestors 'self'"
)


#: A tracking URL of ours: ``…/o/<token>.gif`` (the open pixel) or ``…/c/<token>`` (a click).
_TRACKED = re.compile(r"""https?://[^\s"'<>/]+(?:/[^\s"'<>]*?)?/(?P<kind>[oc])/(?P<token>[A-Za-z0-9_.-]+)""")
#: What the preview shows instead of the open pixel: the same 1×1 transparent GIF, inline.
_INLINE_PIXEL = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"


def tracking_free(html: str, tokens: Tokens, *, is_html: bool = True) -> str:
    """The email's HTML with every tracking URL of ours neutralised (see the module docstring).

    Only URLs whose token verifies are touched: anything else (another site's ``/c/…``) is left
    as the email has it.
    """

    def replace(match: re.Match[str]) -> str:
        token = match.group("token")
        try:
            if match.group("kind") == "o":
                if not token.endswith(".gif"):
                    return match.group()
                tokens.read_open(token[:-4])
                return _INLINE_PIXEL
            target = tokens.read_click(token)
        except TokenError:
            return match.group()
        # The honeypot (no URL) leads nowhere; a link, to where the click would have redirected.
        if not target.url:
            return "about:blank"
        return escape(target.url, quote=True) if is_html else target.url

    return _TRACKED.sub(replace, html)


def capture_store() -> CaptureStore:
    """The app's store on ``config.capture_dir``, kept for the app's life (it caches the sort index)."""
    path = services().config.capture_dir
    store = current_app.extensions.get("nurture_capture_store")
    if store is None or store.path != path:
        store = current_app.extensions["nurture_capture_store"] = CaptureStore(path)
    return store


@bp.before_request
def _only_with_embedded_smtp() -> None:
    # With SMTP_URL set, mail goes to a real relay and there is nothing to show.
    if not services().config.embedded_smtp:
        abort(404)


@bp.after_request
def _security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", _CSP)
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


@bp.get("/")
@role_required("inbox:read")
def index() -> str:
    store = capture_store()
    total = store.count()
    pages = max(1, math.ceil(total / PAGE_SIZE))
    page = min(max(request.args.get("page", 1, type=int) or 1, 1), pages)
    messages = store.list(limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    return render_template("inbox/index.html", messages=messages, total=total, page=page, pages=pages)


@bp.get("/<key>")
@role_required("inbox:read")
def message(key: str) -> str:
    captured = _get_or_404(key)
    html = captured.html
    tokens = Tokens.from_config(services().config)
    if html is not None:
        html = with_link_target(tracking_free(html, tokens))
    text = captured.text
    if text is not None:  # copied from the text part, a link is not a click either
        text = tracking_free(text, tokens, is_html=False)
    return render_template(
        "inbox/message.html",
        message=captured,
        html_srcdoc=html,
        text=text,
    )


@bp.get("/<key>/raw")
@role_required("inbox:read")
def raw(key: str) -> Response:
    captured = _get_or_404(key)
    return send_file(
        io.BytesIO(captured.raw),
        mimetype="message/rfc822",
        as_attachment=True,
        download_name=secure_filename(f"{captured.key}.eml") or "message.eml",
        max_age=0,
    )


@bp.post("/clear")
@role_required("inbox:clear")
def clear() -> ResponseReturnValue:
    store = capture_store()
    removed = store.count()
    store.clear()
    flash(f"Inbox cleared: {removed} message{'' if removed == 1 else 's'} deleted.", "success")
    return redirect(url_for(".index"), code=303)


def with_link_target(html: str) -> str:
    """The email's HTML with ``<base target="_blank">`` placed where the parser keeps it in <head>."""
    match = _HEAD.search(html) or _DOCTYPE.match(html)
    position = match.end() if match else 0
    return html[:position] + _LINK_TARGET + html[position:]


def _get_or_404(key: str) -> CapturedMessage:
    try:
        return capture_store().get(key)
    except KeyError:
        abort(404)
