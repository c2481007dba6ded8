"""No open redirect: whatever is done to a click URL, it goes to the email's own link or nowhere.

Tokens come from the messages the real SMTP server received: two emails, A and B.
"""
from __future__ import annotations

import base64
import json
from urllib.parse import quote, urlsplit

import pytest
from sqlalchemy import select
from support.tracking import BROWSER, pixel_url, visible_links

from nurture_mail.models import Event
from nurture_mail.tracking.events import EventBuffer
from nurture_mail.tracking.ingest import drain_events
from nurture_mail.tracking.tokens import Tokens

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
REPORT = "https://northwind.example/reports/cloud-risk-2026"
SUMMARY = "https://northwind.example/blog/cloud-risk-2026-in-one-page"


@pytest.fixture
def two_emails(platform, clock):
    """Welcome emails to A and B, read 30 minutes later: (client, A's tokens, B's tokens)."""
    platform.add_lead("a@acme.example", first_name="A")
    platform.add_lead("b@bolt.example", first_name="B")
    platform.enroll("a@acme.example")
    platform.enroll("b@bolt.example")
    platform.tick_and_work()
    email_a = platform.received("a@acme.example")[0]
    email_b = platform.received("b@bolt.example")[0]
    clock.advance(minutes=30)

    def tokens(email):
        links = visible_links(email.html)
        return {"report": links["Read the 2026 report"].path.removeprefix("/c/"),
                "summary": links["The one-page summary"].path.removeprefix("/c/"),
                "pixel": urlsplit(pixel_url(email.html)).path.removeprefix("/o/")}

    return platform.app.test_client(), tokens(email_a), tokens(email_b)


def flip(token: str, index: int) -> str:
    """Change one character so that the decoded bytes change (the 6-bit value's top bit)."""
    char = token[index]
    return token[:index] + ALPHABET[ALPHABET.index(char) ^ 32] + token[index + 1:]


def get(client, path: str, method: str = "GET"):
    return client.open(path, method=method, headers={"User-Agent": BROWSER})


def assert_refused(response, status: int = 404) -> None:
    assert response.status_code == status, response.status_code
    assert "Location" not in response.headers
    if response.mimetype == "text/html":
        assert b"not valid" in response.data or b"Not Found" in response.data


def buffered(platform) -> int:
    return EventBuffer(platform.svc.redis).pending()


def test_a_token_works_only_as_its_own_emails_link(platform, two_emails):
    client, a, b = two_emails
    assert get(client, f"/c/{a['report']}").headers["Location"] == REPORT
    assert get(client, f"/c/{b['summary']}").headers["Location"] == SUMMARY
    drain_events(platform.svc)
    deliveries = {d.lead_id: d.id for d in platform.deliveries()}
    with platform.svc.db.session() as s:
        stored = [(e.delivery_id, e.detail["url"]) for e in s.scalars(select(Event).order_by(Event.id))]
    lead_a, lead_b = sorted(deliveries)
    assert stored == [(deliveries[lead_a], REPORT), (deliveries[lead_b], SUMMARY)]


def test_flipped_bytes_anywhere_are_refused(platform, two_emails):
    client, a, _ = two_emails
    token = a["report"]
    positions = [i for i, ch in enumerate(token) if ch != "."]
    for index in positions:
        assert_refused(get(client, f"/c/{flip(token, index)}"))
    assert buffered(platform) == 0


def test_truncated_tokens_are_refused(platform, two_emails):
    client, a, _ = two_emails
    token = a["report"]
    payload, _, signature = token.rpartition(".")
    for cut in (token[:-1], token[:-5], token[:-len(signature) // 2], payload, payload + ".", token[:12],
                token[1:], "." + signature):
        assert_refused(get(client, f"/c/{cut}"))
    assert_refused(get(client, f"/o/{a['pixel'][:-8]}"))
    assert buffered(platform) == 0


def test_swapped_signatures_and_forged_payloads_are_refused(platform, two_emails):
    client, a, b = two_emails
    payload_a, _, signature_a = a["report"].rpartition(".")
    payload_b, _, signature_b = b["summary"].rpartition(".")
    assert_refused(get(client, f"/c/{payload_a}.{signature_b}"))
    assert_refused(get(client, f"/c/{payload_b}.{signature_a}"))
    # A's delivery with B's link, or A's link pointed elsewhere, keeping A's signature.
    delivery_a, link_a, _ = json.loads(base64.urlsafe_b64decode(payload_a + "=="))
    delivery_b, link_b, _ = json.loads(base64.urlsafe_b64decode(payload_b + "=="))
    for forged in ([delivery_a, link_b, SUMMARY], [delivery_b, link_a, REPORT], [delivery_a, link_a, "https://evil.example/"],
                   [delivery_a, None, None]):
        encoded = base64.urlsafe_b64encode(json.dumps(forged, separators=(",", ":")).encode()).decode().rstrip("=")
        assert_refused(get(client, f"/c/{encoded}.{signature_a}"))
    # The pixel token of A is no click token, and a click token no pixel token.
    assert_refused(get(client, f"/c/{a['pixel'].removesuffix('.gif')}"))
    assert_refused(get(client, f"/o/{a['report']}.gif"))
    assert buffered(platform) == 0


def test_a_url_that_was_never_in_the_email_is_unreachable(platform, two_emails):
    client, a, _ = two_emails
    # Signed with a key that is not ours.
    foreign = Tokens("attacker-key").click(1, 1, "https://evil.example/phish")
    assert_refused(get(client, f"/c/{foreign}"))
    # Extra parameters are ignored: the target is the one signed into the token, nothing else.
    for extra in ("?url=https://evil.example", "?next=//evil.example", "?redirect=javascript:alert(1)"):
        assert get(client, f"/c/{a['report']}{extra}").headers["Location"] == REPORT
    assert_refused(get(client, "/c/https%3A%2F%2Fevil.example"))
    assert buffered(platform) == 3  # the three real clicks only


@pytest.mark.parametrize("target", [
    "javascript:alert(document.domain)",
    "JAVASCRIPT:alert(1)",
    "//evil.example",
    "//evil.example/path",
    "/\\evil.example",
    "https:/\\evil.example",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "https://evil.example\r\nSet-Cookie: a=b",
])
def test_javascript_and_protocol_relative_targets_never_redirect(platform, two_emails, target):
    client, a, _ = two_emails
    # As a path after /c/.
    assert_refused(get(client, f"/c/{quote(target, safe='')}"))
    # Even validly signed with the real key (a loader bug, a leaked template): still refused.
    tokens = Tokens.from_config(platform.svc.config)
    delivery_id = platform.deliveries()[0].id
    with pytest.raises(ValueError):
        tokens.click(delivery_id, 1, target)
    assert_refused(get(client, f"/c/{tokens._click.dumps([delivery_id, 1, target])}"))
    assert buffered(platform) == 0


@pytest.mark.parametrize("path", ["/c//evil.example", "/c///evil.example", "/c/", "/c", "/c/%2F%2Fevil.example",
                                  "/c/..%2F..%2Fevil.example", "/o//evil.example"])
def test_odd_paths_are_plain_404s_not_redirects(platform, two_emails, path):
    client, _, _ = two_emails
    assert_refused(get(client, path))


def test_a_tampered_pixel_is_a_404_gif_and_records_nothing(platform, two_emails):
    client, a, _ = two_emails
    response = get(client, f"/o/{flip(a['pixel'], 3)}")
    assert_refused(response)
    assert response.mimetype == "image/gif"
    assert get(client, f"/o/{a['pixel']}").status_code == 200
    assert buffered(platform) == 1


@pytest.mark.parametrize("suffix", ["", ".png", ".gif.gif", ".GIF", "/x.gif"])
def test_a_valid_open_token_without_the_gif_suffix_is_a_404_and_records_nothing(platform, two_emails, suffix):
    client, a, _ = two_emails
    token = a["pixel"].removesuffix(".gif")
    response = get(client, f"/o/{token}{suffix}")
    assert_refused(response)
    assert response.mimetype == "image/gif"
    assert buffered(platform) == 0
    assert get(client, f"/o/{token}.gif").status_code == 200
    assert buffered(platform) == 1
