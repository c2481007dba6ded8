"""Telling machines from people: pure rules over one tracking hit, no I/O.

Security gateways (Proofpoint, Mimecast, Barracuda, Microsoft Defender Safe Links, …) fetch
every link and image of an email seconds after it is delivered, and link previewers and
scripts follow URLs without a person behind them. Such hits are kept, flagged with the reason
(so a marketer can see why), and never teach or score.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

#: Substrings (case-insensitive) of user agents that belong to scanners, previewers and scripts.
#: Deliberately specific: "Microsoft Office" or "GoogleImageProxy" are people reading mail.
DEFAULT_SCANNER_AGENTS: tuple[str, ...] = (
    # security gateways and link scanners
    "proofpoint", "ppops-", "mimecast", "barracuda", "bingpreview", "google-safety", "safelinks",
    "symantec", "messagelabs", "trendmicro", "forcepoint", "fortiguard", "sophos", "zscaler",
    "ironport", "cloudmark", "virustotal", "urlscan",
    # link previewers
    "slackbot", "facebookexternalhit", "twitterbot", "linkedinbot", "skypeuripreview",
    "discordbot", "whatsapp", "telegrambot",
    # scripts, libraries and headless browsers
    "python-requests", "python-urllib", "python-httpx", "aiohttp", "curl/", "wget/",
    "go-http-client", "okhttp", "java/", "apache-httpclient", "libwww-perl", "node-fetch",
    "axios/", "scrapy", "headlesschrome", "phantomjs",
    # crawlers
    "googlebot", "bingbot", "crawler", "spider",
)


@dataclass(frozen=True)
class BotRules:
    """The configurable part of bot detection (BOT_CLICK_SECONDS, BOT_USER_AGENTS)."""

    #: A hit this soon after the email was delivered is a gateway's pre-fetch, not a reader.
    click_seconds: float = 10.0
    agents: tuple[str, ...] = DEFAULT_SCANNER_AGENTS
    _pattern: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        terms = sorted({a.strip().lower() for a in self.agents if a.strip()}, key=len, reverse=True)
        pattern = re.compile("|".join(re.escape(t) for t in terms)) if terms else None
        object.__setattr__(self, "_pattern", pattern)

    def scanner_agent(self, user_agent: str) -> str | None:
        """The listed substring the user agent contains, if any."""
        if self._pattern is None:
            return None
        match = self._pattern.search(user_agent.lower())
        return match.group(0) if match else None


def bot_reason(
    rules: BotRules,
    *,
    method: str,
    user_agent: str | None,
    honeypot: bool = False,
    seconds_after_send: float | None,
) -> str | None:
    """Why this hit is a machine's (reasons joined by ``; ``), or None for a person's.

    ``seconds_after_send`` is None when the send time is not recorded yet: the hit came before
    the sender even committed the email as sent, which only a gateway is fast enough to do.
    """
    reasons: list[str] = []
    if honeypot:
        reasons.append("honeypot link (hidden from people)")
    if method.upper() == "HEAD":
        reasons.append("HEAD request")
    agent = (user_agent or "").strip()
    if not agent:
        reasons.append("no user agent")
    else:
        matched = rules.scanner_agent(agent)
        if matched:
            reasons.append(f"scanner user agent ({matched})")
    if seconds_after_send is None:
        reasons.append("before the send was recorded")
    elif seconds_after_send < rules.click_seconds:
        reasons.append(f"{max(seconds_after_send, 0):.1f} s after delivery (< {rules.click_seconds:g} s)")
    return "; ".join(reasons) if reasons else None
