"""The webhook: a real local HTTP server verifies the signature; a failing one sees RQ retries."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select
from support.platform import Platform
from support.sales import hand_off, sync_team

from nurture_mail.models import WebhookDelivery
from nurture_mail.sales.destinations.webhook import verify

SECRET = "hook-secret"


class Receiver:
    """A stdlib HTTP server in a thread: checks each post's signature, answers from a script."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.posts: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append({
                    "body": body,
                    "verified": verify(SECRET.encode(), self.headers["X-Nurture-Timestamp"], body,
                                       self.headers["X-Nurture-Signature"]),
                    "headers": dict(self.headers),
                })
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"try later")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/sales"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hooked(make_app, database_url, smtp_server, clock, team_file):
    def build(url: str, attempts: int = 5) -> Platform:
        app = make_app(database_url, smtp_port=smtp_server.port, sales_webhook_url=url, sales_webhook_secret=SECRET,
                       sales_webhook_max_attempts=attempts, retry_backoff_seconds=0, sales_webhook_timeout=5.0)
        platform = Platform(app, smtp_server, clock)
        platform.sync()
        sync_team(platform, team_file)
        return platform

    return build


def deliveries(platform) -> list[WebhookDelivery]:
    with platform.svc.db.session() as session:
        return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def test_the_dossier_is_posted_signed_with_a_slack_text(hooked):
    with Receiver([200]) as receiver:
        platform = hooked(receiver.url)
        platform.add_lead("hook@acme.example", first_name="Hal", company="Acme", region="AMER")
        handoff_id = hand_off(platform, "hook@acme.example", detail="clicked 'Book a 20-minute demo'")
        platform.work()
    [post] = receiver.posts
    assert post["verified"]
    # Tampering with the body, or replaying it with another timestamp, breaks the signature.
    assert not verify(SECRET.encode(), post["headers"]["X-Nurture-Timestamp"], post["body"] + b" ",
                      post["headers"]["X-Nurture-Signature"])
    assert not verify(SECRET.encode(), "1", post["body"], post["headers"]["X-Nurture-Signature"])
    payload = json.loads(post["body"])
    assert payload["event"] == "handoff.created" and payload["handoff_id"] == handoff_id
    assert payload["text"].startswith(f"New handoff #{handoff_id}: Hal at Acme <hook@acme.example>")
    assert "Why now: hand_raiser (clicked 'Book a 20-minute demo')" in payload["text"]
    assert [q["attribute"] for q in payload["dossier"]["qualification"]][-1] == "urgency"
    # No signed links anywhere in the post: whoever reads the channel cannot act as the rep (#1).
    assert "links" not in payload["dossier"] and "/sales/handoffs/" not in post["body"].decode()
    assert post["headers"]["X-Nurture-Timestamp"] == str(int(platform.clock.now().timestamp()))
    [delivery] = deliveries(platform)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)
    assert len(platform.received(to="ava@sales.example")) == 1  # the email went too


def test_a_failing_endpoint_is_retried_with_backoff_until_it_answers(hooked):
    with Receiver([500, 302]) as receiver:  # a redirect is a failed attempt, never followed
        platform = hooked(receiver.url, attempts=5)
        platform.add_lead("flaky@acme.example", region="AMER")
        hand_off(platform, "flaky@acme.example")
        platform.work()  # RQ requeues the failed job (backoff 0 in this test), the same burst runs it again
    assert len(receiver.posts) == 3 and all(p["verified"] for p in receiver.posts)
    [delivery] = deliveries(platform)
    assert (delivery.status, delivery.attempts, delivery.last_status_code, delivery.last_error) == (
        "delivered", 3, 200, None)


def test_the_last_failure_is_recorded_and_visible(hooked, clock):
    with Receiver([500] * 10) as receiver:
        platform = hooked(receiver.url, attempts=3)
        platform.add_lead("down@acme.example", region="AMER")
        hand_off(platform, "down@acme.example")
        platform.work()
    assert len(receiver.posts) == 3
    [delivery] = deliveries(platform)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", 3, 500)
    assert delivery.last_error == "HTTP 500: try later"
    # The CLI listing shows it.
    from click.testing import CliRunner

    from nurture_mail.cli import sales as sales_cli

    runner = CliRunner()
    import nurture_mail.cli.common as common

    original = common.make_app
    common.make_app = lambda: platform.app
    try:
        platform.svc.close = lambda: None  # the fixture closes it
        result = runner.invoke(sales_cli.handoffs_command, [])
    finally:
        common.make_app = original
    assert result.exit_code == 0, result.output
    assert "down@acme.example" in result.output and "failed (3 attempts): HTTP 500: try later" in result.output


def test_an_unreachable_endpoint_counts_as_a_failed_attempt(hooked):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    platform = hooked(f"http://127.0.0.1:{port}/nobody", attempts=2)
    platform.add_lead("void@acme.example", region="AMER")
    hand_off(platform, "void@acme.example")
    platform.work()
    [delivery] = deliveries(platform)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", 2, None)
    assert delivery.last_error.startswith("URLError: ") and "refused" in delivery.last_error


def test_a_retry_with_a_backoff_waits_then_housekeeping_puts_it_back_on_the_queue(make_app, database_url,
                                                                                   smtp_server, clock, team_file):
    """Workers run without RQ's scheduler (runtime.run_worker), so the sales cron job moves due
    retries back onto the queue. The retry waits 30 s of real time in RQ's registry; the test
    moves its due time into the past instead of sleeping."""
    from nurture_mail.sales.housekeeping import run_housekeeping

    with Receiver([502]) as receiver:
        app = make_app(database_url, smtp_port=smtp_server.port, sales_webhook_url=receiver.url,
                       sales_webhook_secret=SECRET, retry_backoff_seconds=30)
        platform = Platform(app, smtp_server, clock)
        platform.sync()
        sync_team(platform, team_file)
        platform.add_lead("later@acme.example", region="AMER")
        hand_off(platform, "later@acme.example")
        platform.work()
        assert len(receiver.posts) == 1 and deliveries(platform)[0].status == "pending"
        registry = platform.svc.queue.scheduled_job_registry
        [job_id] = registry.get_job_ids()
        assert platform.svc.redis.zscore(registry.key, job_id) > time.time() + 20  # backoff 30 s
        with app.app_context():
            assert run_housekeeping(platform.svc, clock.now()).retries_promoted == 0  # not due yet
            platform.svc.redis.zadd(registry.key, {job_id: int(time.time()) - 1})
            assert run_housekeeping(platform.svc, clock.now()).retries_promoted == 1
            assert run_housekeeping(platform.svc, clock.now()).retries_promoted == 0  # taken once
        platform.work()
    assert len(receiver.posts) == 2
    [delivery] = deliveries(platform)
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
