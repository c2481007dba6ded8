"""Bot rules are pure functions of one hit: tested without any I/O."""
from __future__ import annotations

import pytest
from support.tracking import BROWSER

from nurture_mail.config import Config
from nurture_mail.tracking.bots import DEFAULT_SCANNER_AGENTS, BotRules, bot_reason

RULES = BotRules()


def reason(**overrides):
    hit = dict(method="GET", user_agent=BROWSER, honeypot=False, seconds_after_send=3600.0)
    hit.update(overrides)
    return bot_reason(RULES, **hit)


def test_a_person_reading_later_is_no_bot():
    assert reason() is None
    assert reason(seconds_after_send=10.0) is None  # the bound itself is human


@pytest.mark.parametrize("seconds, expected", [(0.0, "0.0 s"), (2.0, "2.0 s"), (9.9, "9.9 s"), (-1.5, "0.0 s")])
def test_a_hit_within_the_bound_after_delivery_is_a_scanner(seconds, expected):
    assert reason(seconds_after_send=seconds) == f"{expected} after delivery (< 10 s)"


def test_the_bound_is_configurable():
    assert bot_reason(BotRules(click_seconds=60), method="GET", user_agent=BROWSER, seconds_after_send=30.0)
    assert bot_reason(BotRules(click_seconds=1), method="GET", user_agent=BROWSER, seconds_after_send=2.0) is None


def test_a_hit_before_the_send_was_even_recorded_is_a_scanner():
    assert reason(seconds_after_send=None) == "before the send was recorded"


def test_honeypot_head_and_missing_agent():
    assert reason(honeypot=True) == "honeypot link (hidden from people)"
    assert reason(method="HEAD") == "HEAD request"
    assert reason(method="head") == "HEAD request"
    assert reason(user_agent="") == "no user agent"
    assert reason(user_agent=None) == "no user agent"


@pytest.mark.parametrize("agent, matched", [
    ("Mozilla/5.0 (compatible; BingPreview/1.0b) like Gecko", "bingpreview"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Proofpoint/1.0", "proofpoint"),
    ("Mimecast Link Scanner", "mimecast"),
    ("Barracuda Sentinel (EE)", "barracuda"),
    ("Google-Safety; +https://support.google.com", "google-safety"),
    ("python-requests/2.32.3", "python-requests"),
    ("curl/8.5.0", "curl/"),
    ("Wget/1.21.4", "wget/"),
    ("Go-http-client/1.1", "go-http-client"),
    ("Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/120.0 Safari/537.36", "headlesschrome"),
    ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", "slackbot"),
])
def test_known_scanner_agents(agent, matched):
    assert reason(user_agent=agent) == f"scanner user agent ({matched})"


@pytest.mark.parametrize("agent", [
    BROWSER,
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328; Pro)",
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
])
def test_people_reading_mail_are_not_scanners(agent):
    assert reason(user_agent=agent) is None


def test_every_reason_is_kept():
    assert reason(method="HEAD", user_agent="curl/8.5.0", honeypot=True, seconds_after_send=1.0) == (
        "honeypot link (hidden from people); HEAD request; scanner user agent (curl/); 1.0 s after delivery (< 10 s)"
    )


def test_agent_list_from_the_environment(tmp_path):
    base = {"SECRET_KEY": "k", "INSTANCE_PATH": str(tmp_path)}
    config = Config.from_env({**base, "BOT_USER_AGENTS_EXTRA": "AcmeScanner, "})
    assert config.bot_user_agents == DEFAULT_SCANNER_AGENTS + ("AcmeScanner",)
    rules = BotRules(agents=config.bot_user_agents)
    assert rules.scanner_agent("ACMESCANNER/2.0") == "acmescanner"
    replaced = Config.from_env({**base, "BOT_USER_AGENTS": "only-this"})
    assert replaced.bot_user_agents == ("only-this",)
    assert BotRules(agents=replaced.bot_user_agents).scanner_agent("curl/8") is None
    assert BotRules(agents=()).scanner_agent("curl/8") is None
