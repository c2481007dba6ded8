"""A fast writer of ``multipart/alternative`` emails, assembled directly as bytes (DESIGN §9).

The stdlib generator costs about 1 ms per message; writing the few headers and two base64
parts ourselves costs a tenth of that. It is legitimate only because every message it makes
parses back with ``email.policy.default`` to the same headers and parts, with no defects:
``tests/mail/test_mime.py`` checks that for arbitrary input and against ``EmailMessage``.

What the output looks like, and why:

- Header values are pure ASCII. Plain printable ASCII is written as it is (a URI in
  List-Unsubscribe stays a URI); other text (non-ASCII, leading or trailing spaces, tabs,
  anything that looks like an encoded word) becomes RFC 2047 encoded words made by
  ``email.base64mime`` / ``email.quoprimime``, ``b`` or ``q`` by ``email.charset``'s rule
  (whichever is shorter), at most 75 characters each. Lines are folded before a space so that
  they stay within 78 characters where a space allows, and never exceed 998 (ValueError).
- A display name is one encoded word, never several (so longer than 75 characters past 45
  UTF-8 bytes): RFC 2047 says the space between two encoded words is not part of the text,
  yet ``email.policy.default`` keeps it inside a phrase, so a split name would read
  differently in Python and in mail clients. For the same reason its whitespace is tidied
  first (:func:`written_display_name`): inside a phrase the parser reads a run of it as one
  space.
- Bodies are UTF-8, base64 in 76-character lines, in the canonical form of text (RFC 2046
  §4.1.1): every line break CRLF. A decoded body equals the input with ``\\n`` and ``\\r``
  line breaks written as ``\\r\\n``. A body given already quoted-printable (a nurture email
  filled into its step's slot plans, ``slots.py``) is written as it is: encoding it whole
  again would cost more than everything else here.
- The boundary contains ``=_``, which neither base64 nor quoted-printable produces (an ``=`` there starts ``=XX`` or a soft line break), so no body can contain it; it is
  derived from the Message-ID, so the same email always gives the same bytes.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import base64mime, quoprimime
from email.utils import format_datetime
from itertools import chain

from ..keyedmac import keyed_mac

__all__ = ["OutgoingEmail", "build_message", "canonical_text", "message_id_for", "written_display_name"]

CRLF = "\r\n"
#: RFC 5322 §2.1.1: a line SHOULD be at most 78 characters and MUST be at most 998.
IDEAL_LINE = 78
MAX_LINE = 998
#: Raw bytes per encoded word: base64 of 45 bytes is 60 characters, plus 12 of
#: ``=?utf-8?b?…?=`` makes 72, within RFC 2047's 75 (``q`` is chosen only when shorter).
_EW_BYTES = 45
_EW_OVERHEAD = len("=?utf-8?b??=")
#: Base64 lines are 76 characters (RFC 2045 §6.8). Cutting them with a Struct of 32 ``76s``
#: fields makes the pieces in C: 3-4 times faster than slicing in a Python loop, which was
#: the largest single cost of a message.
_B64_LINE = 76
_B64_BLOCK = struct.Struct(f"{_B64_LINE}s" * 32)
_B64_TAIL = [struct.Struct(f"{_B64_LINE}s" * lines) for lines in range(32)]

#: Bytes that ``q`` writes as themselves (space becomes ``_``); RFC 2047 §5 (3) allows these
#: even inside a display name. Every other byte takes three characters (``=XX``).
_Q_LITERAL = b" !*+-/0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOT_ATOM = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_ADDR_SPEC = re.compile(rf"{_DOT_ATOM}@(?:{_DOT_ATOM}|\[[\x21-\x5a\x5e-\x7e]*\])\Z")
_MSG_ID = re.compile(rf"<{_DOT_ATOM}@{_DOT_ATOM}>\Z")
_DOMAIN = re.compile(rf"{_DOT_ATOM}\Z")
#: Display names that may be written as bare atoms: words of atext, one space apart.
_ATOM_PHRASE = re.compile(rf"{_ATEXT}+(?: {_ATEXT}+)*\Z")
_PRINTABLE = re.compile(r"[\x20-\x7e]*\Z")
#: CR and LF would end the header (injection); the other ASCII controls but tab are
#: meaningless in a header, and the stdlib parser reports them as defects even when encoded.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
#: What the stdlib parser takes for an encoded word (``email._header_value_parser``): such
#: text, even plain ASCII, must itself be encoded or it would be decoded on the way back.
_EW_LIKE = re.compile(r"=\?[^?]*\?[qQbB]\?.*?\?=", re.DOTALL)
_FTEXT_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+\Z")
_BLANKS = re.compile(r"[ \t]\s*")
#: A fold point: each piece is the spaces before a word and the word.
_PIECES = re.compile(r" *[^ ]+")
_QUOTED_SPECIALS = re.compile(r'(["\\])')

#: Headers build_message writes itself, or that the parser reads as structured (addresses,
#: MIME): an extra header may not use these names.
_RESERVED = frozenset(
    {"from", "to", "cc", "bcc", "sender", "reply-to", "subject", "date", "orig-date", "message-id",
     "mime-version", "return-path"}
)
_RESERVED_PREFIXES = ("content-", "resent-")


@dataclass(frozen=True)
class OutgoingEmail:
    """One email, ready to be written. Header fields take any Unicode but ASCII control characters
    (tab is fine); bodies take any text. A reader gets every field back exactly, except that
    bodies have CRLF line breaks (:func:`canonical_text`) and display names tidied spaces
    (:func:`written_display_name`); the date is written to the second."""

    from_addr: str
    from_name: str
    to_addr: str
    to_name: str
    subject: str
    html: str
    text: str
    #: The full ``<…@domain>`` form, e.g. from :func:`message_id_for`.
    message_id: str
    #: Timezone-aware; written to the second.
    date: datetime
    reply_to: str | None = None
    #: Not written as a header: the envelope sender carries it. Kept for the transport.
    return_path: str | None = None
    #: E.g. List-Unsubscribe, List-Unsubscribe-Post, X-Campaign; values may be non-ASCII.
    extra_headers: tuple[tuple[str, str], ...] = ()
    #: ``text`` and ``html`` already quoted-printable (UTF-8, CRLF lines of at most 76
    #: characters, decoding to ``canonical_text`` of each), or None for either: written as they
    #: are instead of base64. Slot plans make them from pieces encoded once per step.
    text_qp: bytes | None = None
    html_qp: bytes | None = None


def message_id_for(delivery_id: int, secret: bytes, domain: str) -> str:
    """``<d{id}.{mac}@{domain}>``: the same delivery always gets the same id (a resend after a
    crash folds into the first), and without the secret nobody can mint one of ours."""
    if isinstance(delivery_id, bool) or not isinstance(delivery_id, int) or delivery_id < 0:
        raise ValueError(f"Message-ID: delivery id must be a non-negative integer, got {delivery_id!r}")
    if not secret:
        raise ValueError("Message-ID: the secret must not be empty")
    if not _DOMAIN.match(domain):
        raise ValueError(f"Message-ID: not a usable domain: {domain!r}")
    # HMAC-SHA256 with the secret keyed once per process (keying costs as much as the MAC).
    mac = keyed_mac(secret).hexdigest(b"nurture_mail message-id %d" % delivery_id)[:16]
    return f"<d{delivery_id}.{mac}@{domain}>"


def build_message(email: OutgoingEmail) -> bytes:
    """The whole message, CRLF line endings, ready for SMTP DATA (7-bit, dot-stuffing left to smtplib).

    Raises ValueError naming the header for a CR or LF in any header value or address (header
    injection) or another ASCII control character but tab, an address that is not a plain ``local@domain``, a naive date, or an extra
    header whose name is malformed or one this function writes itself.
    """
    _check_header_values(email)
    if not _MSG_ID.match(email.message_id):
        raise ValueError(f"Message-ID: expected <local@domain>, got {email.message_id!r}")
    headers = [
        _address_header("From", email.from_name, email.from_addr),
        _address_header("To", email.to_name, email.to_addr),
        _unstructured_header("Subject", email.subject),
        f"Date: {_format_date(email.date.replace(microsecond=0), email.date.utcoffset())}{CRLF}",
        f"Message-ID: {email.message_id}{CRLF}",
    ]
    if email.reply_to is not None:
        headers.append(_address_header("Reply-To", "", email.reply_to))
    _check_extra_names(tuple(name for name, _ in email.extra_headers))
    for name, value in email.extra_headers:
        headers.append(_unstructured_header(name, value))
    boundary = "=_" + hashlib.blake2b(email.message_id.encode("ascii"), digest_size=12).hexdigest()
    headers.append(f'MIME-Version: 1.0{CRLF}Content-Type: multipart/alternative; boundary="{boundary}"{CRLF}{CRLF}')
    delimiter = f"--{boundary}{CRLF}".encode("ascii")
    return b"".join((
        "".join(headers).encode("ascii"),
        delimiter,
        *_part("plain", email.text, email.text_qp),
        b"\r\n", delimiter,
        *_part("html", email.html, email.html_qp),
        f"{CRLF}--{boundary}--{CRLF}".encode("ascii"),
    ))


def _part(subtype: str, text: str, quoted_printable: bytes | None) -> tuple[bytes, bytes]:
    """A part's headers and body: quoted-printable as given, else base64 of the text."""
    if quoted_printable is None:
        return _PART_HEADERS[subtype, "base64"], _base64_body(text)
    # The CRLF written before the delimiter belongs to the delimiter (RFC 2046 §5.1.1): a last
    # soft break is dropped, a last hard one is the text's own line break and stays.
    if quoted_printable.endswith(b"=\r\n"):
        quoted_printable = quoted_printable[:-3]
    return _PART_HEADERS[subtype, "quoted-printable"], quoted_printable


_PART_HEADERS = {(subtype, encoding): (f'Content-Type: text/{subtype}; charset="utf-8"{CRLF}'
                                       f"Content-Transfer-Encoding: {encoding}{CRLF}{CRLF}").encode("ascii")
                 for subtype in ("plain", "html") for encoding in ("base64", "quoted-printable")}


def written_display_name(name: str) -> str:
    """A display name as it is written: trimmed of spaces, and each run of whitespace that starts
    with a space or tab made one space. ``email.policy.default`` reads an encoded name back that
    way anyway (its folding whitespace swallows any Unicode whitespace after a space or tab)."""
    if " " in name or "\t" in name:
        return _BLANKS.sub(" ", name).strip(" ")
    return name


def canonical_text(text: str) -> str:
    """A text body as it is sent: every line break (``\\r\\n``, ``\\n`` or a lone ``\\r``) CRLF."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.replace("\n", "\r\n")


def _base64_body(text: str) -> bytes:
    encoded = base64.b64encode(canonical_text(text).encode("utf-8"))
    lines, rest = divmod(len(encoded), _B64_LINE)
    blocks, tail = divmod(lines, 32)
    cut = blocks * 32 * _B64_LINE
    pieces = list(chain.from_iterable(_B64_BLOCK.iter_unpack(memoryview(encoded)[:cut])))
    pieces.extend(_B64_TAIL[tail].unpack_from(encoded, cut))
    if rest:
        pieces.append(encoded[-rest:])
    return b"\r\n".join(pieces)


@functools.lru_cache(maxsize=256)  # every email of a batch has the same extra header names
def _check_extra_names(names: tuple[str, ...]) -> None:
    seen: set[str] = set()
    for name in names:
        key = name.lower()
        if not _FTEXT_NAME.match(name) or len(name) > IDEAL_LINE - 2:
            raise ValueError(f"extra header name {name!r}: expected at most 76 printable ASCII "
                             "characters without ':' or spaces")
        if key in _RESERVED or key.startswith(_RESERVED_PREFIXES):
            raise ValueError(f"{name}: set by build_message or structured; not allowed as an extra header")
        if key in seen:
            raise ValueError(f"{name}: given twice in extra_headers")
        seen.add(key)


def _check_header_values(email: OutgoingEmail) -> None:
    fields = (
        ("From", email.from_name), ("From", email.from_addr), ("To", email.to_name), ("To", email.to_addr),
        ("Subject", email.subject), ("Message-ID", email.message_id),
        ("Reply-To", email.reply_to or ""), ("Return-Path", email.return_path or ""), *email.extra_headers,
    )
    # One search over every name and value (a space between them is no control character);
    # only an email that has one is searched field by field, to name the header.
    if not _CONTROL.search(" ".join([text for field in fields for text in field])):
        return
    for name, value in fields:
        found = _CONTROL.search(name) or _CONTROL.search(value)
        if found:
            name = _CONTROL.sub("", name).strip()
            if found.group() in "\r\n":
                raise ValueError(f"{name}: line break in header value (header injection?): {value!r}")
            raise ValueError(f"{name}: control character {found.group()!r} in header value: {value!r}")


@functools.lru_cache(maxsize=16)  # a batch stamps many messages within the same second
def _format_date(date: datetime, offset: timedelta | None) -> str:
    # ``offset`` is part of the cache key: equal instants in two zones compare (and hash) equal.
    if offset is None:
        raise ValueError(f"Date: a timezone-aware datetime is required, got {date!r}")
    if offset % timedelta(minutes=1):
        # An offset with seconds (zoneinfo's local mean time) has no RFC 5322 form.
        date = date.astimezone(UTC)
    return format_datetime(date)


# Sender, campaign and step headers repeat across a batch; an LRU hit costs well under a µs.
@functools.lru_cache(maxsize=1024)
def _address_header(name: str, display_name: str, addr: str) -> str:
    if not _ADDR_SPEC.match(addr):
        raise ValueError(f"{name}: not a plain ASCII local@domain address: {addr!r}")
    display_name = written_display_name(display_name)
    if not display_name:
        value = addr
    elif not _PRINTABLE.match(display_name) or _EW_LIKE.search(display_name):
        value = f"{_encoded_word(display_name.encode('utf-8'))} <{addr}>"
    elif _ATOM_PHRASE.match(display_name):
        value = f"{display_name} <{addr}>"
    else:
        # A quoted string keeps every space and special character; unfolding is textual, so
        # folding inside it is harmless.
        quoted = _QUOTED_SPECIALS.sub(r"\\\1", display_name)
        value = f'"{quoted}" <{addr}>'
    folded = _fold(name, value)
    if folded is None:
        raise ValueError(f"{name}: display name or address too long for one header line")
    return folded


@functools.lru_cache(maxsize=1024)
def _unstructured_header(name: str, value: str) -> str:
    if _PRINTABLE.match(value) and not _EW_LIKE.search(value) and value == value.strip(" "):
        # Plain ASCII is written as is, so a URI in List-Unsubscribe stays a URI.
        folded = _fold(name, value)
        if folded is not None:
            return folded
    words = _encoded_words(value, first_room=IDEAL_LINE - len(name) - 2)
    return f"{name}: {(CRLF + ' ').join(words)}{CRLF}"


def _fold(name: str, value: str) -> str | None:
    """``Name: value`` folded before spaces to keep lines within 78 characters where a space
    allows; None when some line would still exceed 998. ``value`` must not end with a space."""
    if len(name) + 2 + len(value) <= IDEAL_LINE:
        return f"{name}: {value}{CRLF}" if value else f"{name}:{CRLF}"
    first, *rest = _PIECES.findall(value)
    lines = []
    line = f"{name}: {first}"
    for piece in rest:  # each starts with a space: the fold goes before it
        if len(line) + len(piece) > IDEAL_LINE:
            lines.append(line)
            line = piece
        else:
            line += piece
    lines.append(line)
    if any(len(one) > MAX_LINE for one in lines):
        return None
    return CRLF.join(lines) + CRLF


def _encoded_words(text: str, first_room: int) -> list[str]:
    """RFC 2047 encoded words for the whole of ``text``, cut between characters, the first
    short enough to share its line with the header name."""
    data = text.encode("utf-8")
    # 4 bytes (one character at most) is the floor, so every word makes progress.
    budget = max(4, min(_EW_BYTES, (first_room - _EW_OVERHEAD) // 4 * 3))
    words = []
    start = 0
    while start < len(data):
        end = min(start + budget, len(data))
        while end < len(data) and data[end] & 0xC0 == 0x80:  # not inside a UTF-8 sequence
            end -= 1
        words.append(_encoded_word(data[start:end]))
        start = end
        budget = _EW_BYTES
    return words


def _encoded_word(data: bytes) -> str:
    """``b`` or ``q``, whichever is shorter (ties to ``q``): what ``email.charset`` does for
    UTF-8, with the ``q`` length counted by ``bytes.translate`` instead of byte by byte."""
    q_length = len(data) + 2 * len(data.translate(None, _Q_LITERAL))
    if (len(data) + 2) // 3 * 4 < q_length:
        return base64mime.header_encode(data, "utf-8")
    return quoprimime.header_encode(data, "utf-8")
