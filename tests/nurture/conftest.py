"""An app on a real database (SQLite and PostgreSQL) and real Redis, campaigns synced, for the nurture services."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
from flask import Flask

from nurture_mail.campaigns import CampaignLoader, sync_all
from nurture_mail.clock import FrozenClock
from nurture_mail.models import Lead, LeadStatus


@dataclass
class NurtureBed:
    app: Flask
    clock: FrozenClock

    @property
    def svc(self):
        return self.app.extensions["nurture"]

    def add_lead(self, email: str, **fields) -> int:
        now = self.clock.now()
        with self.svc.db.session() as session:
            lead = Lead(email=email, created_at=now, updated_at=now, status=fields.pop("status", LeadStatus.new),
                        qualification={}, custom_fields={}, hygiene=[], timezone=fields.pop("timezone", "UTC"),
                        consent=fields.pop("consent", True), **fields)
            session.add(lead)
            session.flush()
            return lead.id


@pytest.fixture
def nurture_bed(make_app, database_url, clock) -> NurtureBed:
    app = make_app(database_url)
    config = app.extensions["nurture"].config
    specs, _problems = CampaignLoader(config.templates_dir).load_dir(config.campaigns_dir)
    with app.extensions["nurture"].db.session() as session:
        sync_all(session, specs, clock.now())
    return NurtureBed(app, clock)
