"""A running platform (plugin): app, real SMTP server, real Redis, a database; the ``platform`` fixture."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pytest
from flask import Flask
from sqlalchemy import select

from nurture_mail.campaigns import CampaignLoader, sync_all
from nurture_mail.clock import FrozenClock
from nurture_mail.mail.capture import CaptureServer
from nurture_mail.models import Delivery, Enrollment, Lead, LeadStatus
from nurture_mail.nurture.enroll import enroll, find_campaign
from nurture_mail.nurture.tick import TickReport, run_tick
from nurture_mail.runtime import run_worker


@dataclass
class Platform:
    app: Flask
    smtp: CaptureServer
    clock: FrozenClock

    @property
    def svc(self):
        return self.app.extensions["nurture"]

    def sync(self) -> None:
        config = self.svc.config
        specs, problems = CampaignLoader(config.templates_dir).load_dir(config.campaigns_dir)
        assert not problems, problems
        with self.svc.db.session() as session:
            sync_all(session, specs, self.clock.now())

    def add_lead(self, email: str, timezone: str = "America/New_York", **fields) -> int:
        now = self.clock.now()
        with self.svc.db.session() as session:
            lead = Lead(email=email, timezone=timezone, created_at=now, updated_at=now,
                        status=LeadStatus.new, qualification={}, custom_fields=fields.pop("custom_fields", {}),
                        **fields)
            session.add(lead)
            session.flush()
            return lead.id

    def enroll(self, email: str, campaign: str = "northwind-security", knows: tuple[str, ...] = ()) -> int:
        with self.svc.db.session() as session:
            lead = session.scalar(select(Lead).where(Lead.email == email))
            enrollment = enroll(session, lead, find_campaign(session, campaign), self.clock.now(), knows=knows,
                                declared_by="rep@northwind.example")
            return enrollment.id

    def tick(self, at: datetime | None = None) -> TickReport:
        if at is not None:
            self.clock.set(at)
        with self.app.app_context():
            return run_tick(self.svc, self.clock.now())

    def work(self) -> None:
        """A real RQ worker in burst mode, in this process, sharing the injected clock."""
        run_worker(self.app, burst=True, logging_level="WARNING")

    def tick_and_work(self, at: datetime | None = None) -> TickReport:
        report = self.tick(at)
        self.work()
        return report

    def received(self, to: str | None = None):
        messages = list(reversed(self.smtp.store.list()))  # oldest first
        if to is not None:
            messages = [m for m in messages if to in m.rcpt_tos]
        return messages

    def deliveries(self):
        with self.svc.db.session() as session:
            return list(session.scalars(select(Delivery).order_by(Delivery.id)))

    def enrollment(self, enrollment_id: int) -> Enrollment:
        with self.svc.db.session() as session:
            return session.get(Enrollment, enrollment_id)


@pytest.fixture
def platform(make_app, database_url, smtp_server, clock) -> Platform:
    app = make_app(database_url, smtp_port=smtp_server.port)
    p = Platform(app, smtp_server, clock)
    p.sync()
    return p
