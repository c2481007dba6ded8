"""Lead hygiene at intake: a valid, normalized address, and flags for leads sales must never get.

A flagged lead is kept (a marketer may want to see who came by the booth) but never enrolled
and never handed off: ``Lead.hygiene`` holds the flags, and the sales side checks it.

Flags:

- ``role_account``: the local part is a shared mailbox (``info@``, ``sales@``, ``noreply@``…);
- ``deny:<list>``: the domain is on a deny list of ``hygiene.yaml`` (``deny:competitor``,
  ``deny:student``, ``deny:consultant``, or any list name the file adds);
- ``suppressed``: the address is on the suppression list for all email (``*``). That needs the
  database, so the caller passes what it knows (see ``check``) and the importer looks it up
  once per chunk.

The lists live in a YAML file (``HYGIENE_PATH``, default ``campaigns/hygiene.yaml``); when the
file does not exist the built-in defaults below apply, so nothing needs a file to start.
"""
from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

__all__ = ["DEFAULT_RULES", "Hygiene", "HygieneConfigError", "InvalidEmail", "normalize_email", "validate_hygiene_file"]

#: The defaults, identical to the shipped ``campaigns/hygiene.yaml``.
DEFAULT_RULES: dict[str, Any] = {
    "role_accounts": [
        "abuse", "accounting", "accounts", "admin", "administrator", "billing", "careers", "contact", "contactus",
        "customerservice", "enquiries", "feedback", "hello", "help", "helpdesk", "hostmaster", "hr", "info",
        "inquiries", "it", "jobs", "mail", "marketing", "media", "news", "newsletter", "no-reply", "noc",
        "noreply", "do-not-reply", "donotreply", "office", "orders", "postmaster", "press", "privacy",
        "recruitment", "reception", "sales", "security", "service", "support", "team", "webmaster",
    ],
    "deny": {
        "competitor": ["wiz.io", "crowdstrike.com", "paloaltonetworks.com", "lacework.com", "orca.security"],
        "student": ["*.edu", "*.edu.*", "*.ac.uk", "*.ac.jp", "*.ac.nz", "*.ac.za", "*.ac.in", "*.ac.il",
                    "student.*.*", "students.*.*", "stud.*.*"],
        "consultant": ["accenture.com", "deloitte.com", "pwc.com", "kpmg.com", "ey.com",
                       "mckinsey.com", "bcg.com", "bain.com", "capgemini.com", "gartner.com", "forrester.com"],
    },
}


class InvalidEmail(ValueError):
    """An address that cannot be used; the message says why (for the report's reason)."""


class HygieneConfigError(ValueError):
    """``hygiene.yaml`` cannot be used; the message names the file and the key."""


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


def _pattern_regex(patterns: Iterable[str]) -> re.Pattern[str] | None:
    parts = [fnmatch.translate(p.strip().lower()) for p in patterns if p and p.strip()]
    return re.compile("|".join(f"(?:{p})" for p in parts)) if parts else None


@dataclass
class Hygiene:
    """Compiled hygiene rules: role-account local parts and named domain deny lists."""

    role_accounts: frozenset[str] = frozenset()
    #: list name -> (exact domains, one regex for the glob patterns)
    deny: dict[str, tuple[frozenset[str], re.Pattern[str] | None]] = field(default_factory=dict)
    source: str = "built-in defaults"
    _dns_cache: dict[str, tuple[bool, str]] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_rules(cls, rules: Mapping[str, Any], source: str = "built-in defaults") -> "Hygiene":
        if not isinstance(rules, Mapping):
            raise HygieneConfigError(f"{source}: expected a mapping with role_accounts and deny")
        unknown = set(rules) - {"role_accounts", "deny"}
        if unknown:
            raise HygieneConfigError(f"{source}: {sorted(unknown)[0]}: unknown key (expected role_accounts, deny)")
        roles = rules.get("role_accounts") or []
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise HygieneConfigError(f"{source}: role_accounts: expected a list of local parts")
        deny_rules = rules.get("deny") or {}
        if not isinstance(deny_rules, Mapping):
            raise HygieneConfigError(f"{source}: deny: expected a mapping of list name -> domains")
        deny = {}
        for name, domains in deny_rules.items():
            if not isinstance(domains, list) or not all(isinstance(d, str) for d in domains):
                raise HygieneConfigError(f"{source}: deny.{name}: expected a list of domains or patterns")
            exact = frozenset(d.strip().lower() for d in domains if d.strip() and not any(c in d for c in "*?["))
            globs = [d for d in domains if any(c in d for c in "*?[")]
            deny[str(name)] = (exact, _pattern_regex(globs))
        return cls(frozenset(r.strip().lower() for r in roles if r.strip()), deny, source)

    @classmethod
    def load(cls, path: Path | str) -> "Hygiene":
        """The rules of a YAML file; the built-in defaults when the file does not exist."""
        path = Path(path)
        if not path.exists():
            return cls.from_rules(DEFAULT_RULES)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise HygieneConfigError(f"{path}: not valid YAML ({exc})") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise HygieneConfigError(f"{path}: cannot be read ({exc})") from None
        return cls.from_rules(data or {}, source=str(path))

    @classmethod
    def from_config(cls, config) -> "Hygiene":
        return cls.load(config.hygiene_path)

    def normalize_email(self, raw: str | None, check_deliverability: bool = False) -> str:
        """``normalize_email``, with DNS answers kept for the life of this object (one import)."""
        return normalize_email(raw, check_deliverability, dns_cache=self._dns_cache)

    def check(self, email: str, *, suppressed: bool = False) -> list[str]:
        """The flags of a normalized address, in a stable order; ``suppressed`` as the caller knows it.

        The local part is compared without its ``+tag`` (``info+expo@`` is still ``info@``); a domain
        matches a list exactly, as a subdomain of a listed domain, or by a glob pattern.
        """
        local, _, domain = email.rpartition("@")
        flags: list[str] = []
        if local.split("+", 1)[0] in self.role_accounts:
            flags.append("role_account")
        if self.deny:
            parts = domain.split(".")
            suffixes = {".".join(parts[i:]) for i in range(len(parts) - 1)}  # the domain and its parents
            for name, (exact, globs) in self.deny.items():
                if not exact.isdisjoint(suffixes) or (globs is not None and globs.match(domain)):
                    flags.append(f"deny:{name}")
        if suppressed:
            flags.append("suppressed")
        return flags


def validate_hygiene_file(path: Path | str) -> Hygiene:
    """Load the rules of ``path`` (``HYGIENE_PATH``) or raise ``HygieneConfigError`` naming the file and key.

    For startup checks (``init``, ``run``, the worker): a broken file is then reported before any
    import is accepted, rather than at the first upload. A missing file means the built-in defaults.
    """
    return Hygiene.load(path)


def describe(flag: str) -> str:
    """Words for a flag in the report: ``deny:student`` -> ``student domain (deny list)``."""
    if flag == "role_account":
        return "role account (shared mailbox)"
    if flag == "suppressed":
        return "suppressed address (unsubscribed, bounced or complained)"
    if flag.startswith("deny:"):
        return f"{flag[5:]} domain (deny list)"
    return flag
