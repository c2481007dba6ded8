"""An app on a real database (SQLite and PostgreSQL) and real Redis, campaigns synced, for imports."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from nurture_mail.campaigns import CampaignLoader, sync_all
from nurture_mail.clock import FrozenClock
from nurture_mail.leads.imports import create_import
from nurture_mail.models import ImportRowResult, Lead, LeadStatus, Suppression

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@dataclass
class ImportBed:
    app: Flask
    clock: FrozenClock

    @property
    def svc(self):
        return self.app.extensions["nurture"]

    def add_lead(self, email: str, **fields) -> int:
        now = self.clock.now()
        with self.svc.db.session() as session:
            lead = Lead(email=email, created_at=now, updated_at=now, status=fields.pop("status", LeadStatus.new),
                        qualification=fields.pop("qualification", {}), custom_fields=fields.pop("custom_fields", {}),
                        hygiene=fields.pop("hygiene", []), **fields)
            session.add(lead)
            session.flush()
            return lead.id

    def suppress(self, email: str, scope: str = "*") -> None:
        with self.svc.db.session() as session:
            session.add(Suppression(email=email, scope=scope, reason="unsubscribe", source="link",
                                    created_at=self.clock.now()))

    def create(self, data: bytes, filename: str = "leads.csv", **options) -> int:
        options.setdefault("lead_source", "trade-show")
        with self.svc.db.session() as session:
            job = create_import(self.svc, session, filename=filename, data=data, now=self.clock.now(), **options)
            return job.id

    def outcomes(self, import_id: int) -> list[tuple]:
        with self.svc.db.session() as session:
            return [tuple(r) for r in session.execute(
                select(ImportRowResult.row, ImportRowResult.email, ImportRowResult.outcome, ImportRowResult.field)
                .where(ImportRowResult.import_id == import_id).order_by(ImportRowResult.row))]

    def reasons(self, import_id: int) -> dict[int, str]:
        with self.svc.db.session() as session:
            return dict(session.execute(select(ImportRowResult.row, ImportRowResult.reason)
                                        .where(ImportRowResult.import_id == import_id)).all())

    def lead(self, email: str) -> Lead | None:
        with self.svc.db.session() as session:
            return session.scalar(select(Lead).where(Lead.email == email))


@pytest.fixture
def bed(make_app, database_url, clock) -> ImportBed:
    app = make_app(database_url)
    config = app.extensions["nurture"].config
    # Problems are not asserted here: other YAML files (hygiene.yaml) may share the folder.
    specs, _problems = CampaignLoader(config.templates_dir).load_dir(config.campaigns_dir)
    with app.extensions["nurture"].db.session() as session:
        sync_all(session, specs, clock.now())
    return ImportBed(app, clock)


@pytest.fixture
def messy() -> bytes:
    return (FIXTURES / "leads_messy.csv").read_bytes()
