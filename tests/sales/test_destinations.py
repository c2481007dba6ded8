"""Notification destinations are chosen by configuration, each behind the same small interface."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from nurture_mail.config import Config, ConfigError
from nurture_mail.sales.destinations import REGISTRY, Destination, configured, destination
from nurture_mail.sales.destinations.email import EmailDestination
from nurture_mail.sales.destinations.webhook import WebhookDestination


def services(tmp_path, **env: str) -> SimpleNamespace:
    return SimpleNamespace(config=Config.from_env(env, instance_path=tmp_path, secret_key="k"))


def test_every_registered_destination_keeps_the_contract():
    assert REGISTRY == {"email": EmailDestination, "webhook": WebhookDestination}
    for cls in REGISTRY.values():
        assert issubclass(cls, Destination) and cls.name and cls.kinds


def test_sales_destinations_chooses_them_and_the_webhook_needs_its_url(tmp_path):
    assert [d.name for d in configured(services(tmp_path))] == ["email"]  # no SALES_WEBHOOK_URL
    both = services(tmp_path, SALES_WEBHOOK_URL="https://hooks.example/x")
    assert [d.name for d in configured(both)] == ["email", "webhook"]
    only_hook = services(tmp_path, SALES_WEBHOOK_URL="https://hooks.example/x", SALES_DESTINATIONS="webhook")
    assert [d.name for d in configured(only_hook)] == ["webhook"]
    with pytest.raises(ConfigError, match="^SALES_DESTINATIONS: unknown destination 'slack'"):
        configured(services(tmp_path, SALES_DESTINATIONS="email,slack"))
    with pytest.raises(ValueError, match="unknown notification destination 'pager'"):
        destination(services(tmp_path), "pager")


def test_each_destination_brings_its_own_retry_policy(tmp_path):
    svc = services(tmp_path, SMTP_MAX_ATTEMPTS="3", SALES_WEBHOOK_MAX_ATTEMPTS="1", SALES_WEBHOOK_TIMEOUT="7",
                   RETRY_BACKOFF_SECONDS="10")
    email = destination(svc, "email").job_options()
    assert email["job_timeout"] == 120 and email["retry"].max == 2 and email["retry"].intervals == [10, 20]
    webhook = destination(svc, "webhook").job_options()
    assert webhook["job_timeout"] == 37 and webhook["retry"] is None
