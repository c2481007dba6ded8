"""Email addresses: the one normaliser every part of the platform uses.

Leads, users, sales reps and suppression rows store an address in the form
:func:`normalize_email` returns, and look addresses up by :func:`address_key`, so an address
typed with capitals, blanks or angle brackets finds the same row everywhere.
"""
from __future__ import annotations

import re
from functools import lru_cache

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

__all__ = ["InvalidEmail", "address_key", "normalize_email"]


class InvalidEmail(ValueError):
    """An address that cannot be used; the message says why (for the report's reason)."""


#: An ASCII dot-atom local part (RFC 5322), the shape of nearly every address in a real file.
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


def _validated(text: str, check_deliverability: bool) -> str:
    try:
        result = validate_email(text, check_deliverability=check_deliverability)
    except EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from None
    return result.normalized.lower()


#: A plain ASCII host name whose top-level label ends with a letter, every label 1-63 letters,
#: digits or inner hyphens: what email-validator accepts unchanged (but lower-cased) when no
#: label has a hyphen pair and the name is not special-use (both checked in ``_plain_domain``).
_PLAIN_DOMAIN = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:[a-z0-9-]{0,62})?[a-z]")
_SPECIAL_USE = tuple(SPECIAL_USE_DOMAIN_NAMES)


def _plain_domain(domain: str) -> str | None:
    """The lower-cased domain when email-validator would accept it as is, else None (then ask it).

    email-validator spends ~0.3 ms per domain on Unicode and IDNA rules a plain ASCII host name
    cannot trip; a file of 100,000 rows holds tens of thousands of distinct company domains.
    """
    if not domain.isascii() or len(domain) > 253 or "--" in domain:
        return None
    lowered = domain.lower()
    if not _PLAIN_DOMAIN.fullmatch(lowered) or lowered.rpartition(".")[2].startswith("-"):
        return None
    for special in _SPECIAL_USE:
        if lowered == special or lowered.endswith("." + special):
            return None
    return lowered


@lru_cache(maxsize=65536)
def _domain_syntax(domain: str) -> tuple[bool, str]:
    """Syntax only, so it can be cached for the life of the process."""
    plain = _plain_domain(domain)
    if plain is not None:
        return True, plain
    return _domain_check(domain, False)


def _domain_check(domain: str, check_deliverability: bool) -> tuple[bool, str]:
    try:
        return True, _validated(f"a@{domain}", check_deliverability).rpartition("@")[2]
    except InvalidEmail as exc:
        return False, str(exc)


def normalize_email(raw: str | None, check_deliverability: bool = False, *,
                    dns_cache: dict[str, tuple[bool, str]] | None = None) -> str:
    """The address validated (syntax; DNS MX/A only when asked) and lower-cased.

    Lower-cased as a whole: every mail system we meet treats the local part case-insensitively,
    and leads are matched on this exact string (unique column, no function index). Unicode is
    NFC-normalized by email-validator.

    Speed: an ASCII address whose local part is a plain dot-atom (the common case) has only its
    domain validated by email-validator, once per domain (syntax: cached for the process; DNS:
    cached in ``dns_cache``, one per import, so a long-running worker never trusts an old
    answer); anything else goes through email-validator whole. Both paths accept and normalize
    the same addresses (tested).
    """
    text = (raw or "").strip()
    if text.startswith("<") and text.endswith(">"):  # "<ann@acme.example>", as some exports write it
        text = text[1:-1].strip()
    if not text:
        raise InvalidEmail("empty")
    local, at, domain = text.rpartition("@")
    if (at and text.isascii() and len(local) <= 64 and len(text) <= 254 and "@" not in local
            and _DOT_ATOM.fullmatch(local) and domain):
        if not check_deliverability:
            ok, value = _domain_syntax(domain)
        elif dns_cache is not None:
            if domain not in dns_cache:
                dns_cache[domain] = _domain_check(domain, True)
            ok, value = dns_cache[domain]
        else:
            ok, value = _domain_check(domain, True)
        if not ok:
            raise InvalidEmail(value)
        normalized = f"{local.lower()}@{value}"
        if len(normalized) <= 254:
            return normalized
    return _validated(text, check_deliverability)


def address_key(raw: str | None) -> str:
    """The form an address is stored and matched in, for lookups that must not fail.

    A valid address gives what :func:`normalize_email` gives; text that is not a valid address
    (a bounce naming a mangled recipient) is only trimmed and lower-cased, so it still matches
    a row stored from the same text.
    """
    try:
        return normalize_email(raw)
    except InvalidEmail:
        return (raw or "").strip().lower()
