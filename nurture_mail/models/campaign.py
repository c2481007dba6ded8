"""Campaigns (nurture tracks), their steps, the topics steps teach, and tracked links."""
from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Enum, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base


class Stage(str, enum.Enum):
    awareness = "awareness"
    consideration = "consideration"
    decision = "decision"


STAGE_ORDER = {Stage.awareness: 0, Stage.consideration: 1, Stage.decision: 2}


class Topic(Base):
    """A unit of knowledge; global by slug so what a lead learned counts in every campaign."""

    __tablename__ = "topic"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    stage: Mapped[Stage] = mapped_column(Enum(Stage, native_enum=False, length=20))
    description: Mapped[str | None] = mapped_column(Text)


class Campaign(Base):
    __tablename__ = "campaign"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    #: Where the definition came from (``campaigns/x.yaml``) or ``web``.
    source: Mapped[str] = mapped_column(String(300))
    #: Hash of the definition last synced, so a re-sync of an unchanged file is a no-op.
    definition_hash: Mapped[str] = mapped_column(String(64))
    cadence_seconds: Mapped[int]
    window_start_minute: Mapped[int] = mapped_column(default=9 * 60)
    window_end_minute: Mapped[int] = mapped_column(default=17 * 60)
    weekdays_only: Mapped[bool] = mapped_column(default=True)
    max_touches: Mapped[int]
    #: Exit and handoff rules, kept as declared (validated by the loader).
    exit_rules: Mapped[dict[str, Any]] = mapped_column(default=dict)
    handoff_rule: Mapped[dict[str, Any]] = mapped_column(default=dict)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    steps: Mapped[list["Step"]] = relationship(
        back_populates="campaign", order_by="Step.position", cascade="all, delete-orphan"
    )


class Step(Base):
    """One content email. Alternates are steps too, pointing at the step they re-approach."""

    __tablename__ = "step"
    __table_args__ = (UniqueConstraint("campaign_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(80))
    position: Mapped[int]
    stage: Mapped[Stage] = mapped_column(Enum(Stage, native_enum=False, length=20))
    subject: Mapped[str] = mapped_column(String(300))
    preheader: Mapped[str | None] = mapped_column(String(300))
    html_template: Mapped[str] = mapped_column(String(300))
    text_template: Mapped[str] = mapped_column(String(300))
    teaches: Mapped[list[str]] = mapped_column(default=list)
    requires: Mapped[list[str]] = mapped_column(default=list)
    alternate_of_id: Mapped[int | None] = mapped_column(ForeignKey("step.id", ondelete="SET NULL"))
    #: False once a re-sync removed the step from its file: kept for the sent history.
    active: Mapped[bool] = mapped_column(default=True)

    campaign: Mapped[Campaign] = relationship(back_populates="steps")
    links: Mapped[list["Link"]] = relationship(
        back_populates="step", order_by="Link.position", cascade="all, delete-orphan"
    )


class Link(Base):
    """A link a step's email contains, with the topic a click on it shows interest in."""

    __tablename__ = "link"
    __table_args__ = (UniqueConstraint("step_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    step_id: Mapped[int] = mapped_column(ForeignKey("step.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    position: Mapped[int]
    url: Mapped[str] = mapped_column(String(2000))
    label: Mapped[str | None] = mapped_column(String(200))
    topic: Mapped[str | None] = mapped_column(String(80))
    hand_raiser: Mapped[bool] = mapped_column(default=False)

    step: Mapped[Step] = relationship(back_populates="links")
