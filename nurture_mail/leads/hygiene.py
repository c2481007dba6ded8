"""Lead hygiene at intake: a valid, normalized address, and flags for leads sales must never get.

A flagged lead is kept (a marketer may want to see who came by the booth) but never enrolled
and never handed off: ``Lead.hygiene`` holds the flags, and the sales side checks it.

Flags:

- ``role_account``: the local part is a shared mailbox (``info@``, ``sales@``, ``noreply@``…),
  alone or leading (``it-team@``, ``sales.team@``, ``info-uk@``; see ``role_local_part``);
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

from ..addresses import InvalidEmail, normalize_email
from ..exceptions import Problem, RuleFileError
from ..yamlfile import YamlFileError, read_yaml

__all__ = ["DEFAULT_RULES", "Hygiene", "HygieneConfigError", "validate_hygiene_file"]

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


class HygieneConfigError(RuleFileError, ValueError):
    """``hygiene.yaml`` cannot be used; ``problems`` name the file and the key."""


#: What splits a local part into tokens (a ``+tag`` is dropped first).
_TOKEN_SEPARATORS = re.compile(r"[._+-]+")


def _role_key(local: str) -> str:
    """``'Sales.Team'`` -> ``'sales-team'``: tokens joined by ``-``, how list entries and addresses compare."""
    return "-".join(t for t in _TOKEN_SEPARATORS.split(local.strip().lower()) if t)


def role_local_part(local: str, role_accounts: frozenset[str]) -> bool:
    """Whether a local part is a role account: its leading tokens are a listed entry.

    Tokens are split on ``.``, ``-``, ``_`` (and a ``+tag`` is dropped): with ``it``, ``sales``,
    ``info`` and ``no-reply`` listed, ``it-team``, ``sales.team``, ``info_uk``, ``no.reply.eu`` and
    ``info+expo`` match. Only *leading* tokens count: a role word later in the address is often a
    surname (``steve.jobs``, ``mark.press``), so ``anna.sales`` is a person, not a mailbox.
    """
    base = local.split("+", 1)[0].lower()
    if base in role_accounts:  # the common cases: a whole listed word, or a plain name
        return True
    first = _FIRST_TOKEN.match(base)
    if first is not None and first.group() and first.group() not in _first_tokens(role_accounts):
        return False  # no entry starts with this address's first token (most names)
    tokens = [t for t in _TOKEN_SEPARATORS.split(base) if t]
    return any("-".join(tokens[:n]) in role_accounts for n in range(1, len(tokens) + 1))


#: The first token of a local part that does not start with a separator.
_FIRST_TOKEN = re.compile(r"[^._+-]*")


@lru_cache(maxsize=64)
def _first_tokens(role_accounts: frozenset[str]) -> frozenset[str]:
    """The first token of every entry (``no-reply`` -> ``no``): a local part starting otherwise is no role."""
    return frozenset(entry.split("-", 1)[0] for entry in role_accounts)


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
    #: address as written -> why its syntax is refused (no DNS involved; bounded, see ``normalize_email``)
    _invalid: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    #: domain -> its deny-list flags (a file repeats its domains; bounded, see ``check``)
    _deny_cache: dict[str, list[str]] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_rules(cls, rules: Any, source: str = "built-in defaults") -> "Hygiene":
        """Compile validated rules; :class:`HygieneConfigError` lists every problem of ``rules``."""
        problems: list[Problem] = []

        def add(path: str, message: str) -> None:
            problems.append(Problem(source, path, message))

        if not isinstance(rules, Mapping):
            raise HygieneConfigError([Problem(source, "", "expected a mapping with role_accounts and deny")])
        for key in sorted(set(rules) - {"role_accounts", "deny"}, key=str):
            add(str(key), "unknown key (expected role_accounts, deny)")
        roles = rules.get("role_accounts") or []
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            add("role_accounts", "expected a list of local parts")
            roles = []
        deny_rules = rules.get("deny") or {}
        if not isinstance(deny_rules, Mapping):
            add("deny", "expected a mapping of list name -> domains")
            deny_rules = {}
        deny = {}
        for name, domains in deny_rules.items():
            if not isinstance(domains, list) or not all(isinstance(d, str) for d in domains):
                add(f"deny.{name}", "expected a list of domains or patterns")
                continue
            exact = frozenset(d.strip().lower() for d in domains if d.strip() and not any(c in d for c in "*?["))
            globs = [d for d in domains if any(c in d for c in "*?[")]
            deny[str(name)] = (exact, _pattern_regex(globs))
        if problems:
            raise HygieneConfigError(problems)
        return cls(frozenset(_role_key(r) for r in roles if _role_key(r)), deny, source)

    @classmethod
    def load(cls, path: Path | str) -> "Hygiene":
        """The rules of a YAML file; the built-in defaults when the file does not exist."""
        path = Path(path)
        if not path.exists():
            return cls.from_rules(DEFAULT_RULES)
        try:
            data = read_yaml(path, str(path))
        except YamlFileError as exc:
            raise HygieneConfigError([exc.problem]) from None
        return cls.from_rules(data or {}, source=str(path))

    @classmethod
    def from_config(cls, config) -> "Hygiene":
        return cls.load(config.hygiene_path)

    def normalize_email(self, raw: str | None, check_deliverability: bool = False) -> str:
        """``normalize_email``, with DNS answers kept for the life of this object (one import).

        Why a syntactically bad address is refused is kept too: a purchased list repeats the same
        broken addresses (``maria.lopez@``), and email-validator's full parse of each costs more
        than the rest of its row.
        """
        if not check_deliverability and raw in self._invalid:
            raise InvalidEmail(self._invalid[raw])
        try:
            return normalize_email(raw, check_deliverability, dns_cache=self._dns_cache)
        except InvalidEmail as exc:
            if not check_deliverability and raw is not None and len(self._invalid) < 100_000:
                self._invalid[raw] = str(exc)
            raise

    def check(self, email: str, *, suppressed: bool = False) -> list[str]:
        """The flags of a normalized address, in a stable order; ``suppressed`` as the caller knows it.

        The local part is compared without its ``+tag`` (``info+expo@`` is still ``info@``), on its
        leading tokens (``role_local_part``); a domain matches a list exactly, as a subdomain of a
        listed domain, or by a glob pattern.
        """
        local, _, domain = email.rpartition("@")
        flags: list[str] = []
        if role_local_part(local, self.role_accounts):
            flags.append("role_account")
        if self.deny:
            denied = self._deny_cache.get(domain)
            if denied is None:
                denied = self._denied(domain)
                if len(self._deny_cache) < 100_000:
                    self._deny_cache[domain] = denied
            flags.extend(denied)
        if suppressed:
            flags.append("suppressed")
        return flags

    def _denied(self, domain: str) -> list[str]:
        """The deny lists ``domain`` is on: exactly, as a subdomain of a listed domain, or by a pattern."""
        parts = domain.split(".")
        suffixes = {".".join(parts[i:]) for i in range(len(parts) - 1)}  # the domain and its parents
        return [f"deny:{name}" for name, (exact, globs) in self.deny.items()
                if not exact.isdisjoint(suffixes) or (globs is not None and globs.match(domain))]


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
