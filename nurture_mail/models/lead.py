"""The lead: a person we nurture, with firmographics and qualification attributes."""
from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, Enum, Index, String, func, literal_column
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base

if TYPE_CHECKING:
    from .enrollment import Enrollment
    from .knowledge import Knowledge


class LeadStatus(str, enum.Enum):
    new = "new"
    nurturing = "nurturing"
    mql = "mql"
    handed_off = "handed_off"
    accepted = "accepted"
    won = "won"
    lost = "lost"
    recycled = "recycled"
    disqualified = "disqualified"
    unsubscribed = "unsubscribed"
    bounced = "bounced"


#: Statuses in which no nurture email may be sent, whatever campaign asks.
NO_SEND_STATUSES = frozenset({LeadStatus.unsubscribed, LeadStatus.bounced, LeadStatus.disqualified})

#: The ten attributes of a qualified short-term lead (seed 004), in the order sales reads them.
QUALIFICATION_ATTRIBUTES = (
    "industry_code",
    "firmographics",
    "decision_makers_identified",
    "environment_documented",
    "decision_maker_engaged",
    "pain_validated",
    "decision_process_timeframe",
    "budget",
    "competitive_landscape",
    "urgency",
)


class Lead(Base):
    __tablename__ = "lead"
    #: The leads list pages by (updated_at, id), newest first (keyset pagination), and its search
    #: matches prefixes of lower(email / first name / last name / company) (PostgreSQL indexes).
    __table_args__ = (
        Index("ix_lead_updated_at_id", "updated_at", "id"),
        *(Index(f"ix_lead_lower_{column}", func.lower(literal_column(column)).label(f"lower_{column}"),
                postgresql_ops={f"lower_{column}": "text_pattern_ops"}).ddl_if(dialect="postgresql")
          for column in ("email", "first_name", "last_name", "company")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    first_name: Mapped[str | None] = mapped_column(String(120))
    last_name: Mapped[str | None] = mapped_column(String(120))
    title: Mapped[str | None] = mapped_column(String(200))
    company: Mapped[str | None] = mapped_column(String(200))
    lead_source: Mapped[str | None] = mapped_column(String(120), index=True)
    timezone: Mapped[str | None] = mapped_column(String(64))
    consent: Mapped[bool] = mapped_column(default=True)
    # Firmographics
    industry_sic: Mapped[str | None] = mapped_column(String(8))
    industry_naics: Mapped[str | None] = mapped_column(String(8))
    revenue: Mapped[int | None] = mapped_column(BigInteger)
    employees: Mapped[int | None]
    locations: Mapped[int | None]
    region: Mapped[str | None] = mapped_column(String(64))
    #: The ten qualification attributes: name -> free text or null when not known yet.
    qualification: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: Any other import column, usable by templates and scoring.
    custom_fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[LeadStatus] = mapped_column(
        Enum(LeadStatus, native_enum=False, length=20), default=LeadStatus.new, index=True
    )
    #: Soft bounces in a row since the last delivered email; several in a row suppress.
    soft_bounces: Mapped[int] = mapped_column(default=0, server_default="0")
    #: Hygiene flags found at intake ("role_account", "deny:competitor", …): never handed off.
    hygiene: Mapped[list[str]] = mapped_column(default=list, server_default="[]")
    #: Set when personal data was erased (GDPR): the row stays for anonymous aggregates.
    erased_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    enrollments: Mapped[list["Enrollment"]] = relationship(back_populates="lead")
    knowledge: Mapped[list["Knowledge"]] = relationship(back_populates="lead")

    @property
    def full_name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p)

    @property
    def is_clean(self) -> bool:
        """No hygiene flag: the lead may be handed to sales."""
        return not self.hygiene

    @property
    def can_receive(self) -> bool:
        return self.consent and self.status not in NO_SEND_STATUSES
