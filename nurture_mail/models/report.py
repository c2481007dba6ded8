"""Pre-aggregated daily counters per step, so the campaign and step reports stay fast.

One row per (day, step): what happened that UTC day, up to ``refreshed_at``. Rebuilt by the
``refresh_report_counters`` cron job (today and yesterday every five minutes, so late bounces
land; ``days=N`` rebuilds further back); the report pages count live only what no row covers
yet (see ``reports/counters.py``).

The same job keeps the summaries of the topics and monthly reports (``report_topic_day``,
``report_engaged_month``) up to date from their watermarks (``report_watermark``); see
``reports/summaries.py``.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base


class StepDayCount(Base):
    __tablename__ = "report_step_day"

    day: Mapped[date] = mapped_column(primary_key=True)
    step_id: Mapped[int] = mapped_column(ForeignKey("step.id", ondelete="CASCADE"), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"), index=True)
    #: Deliveries sent that day (a delivery that bounced later was sent too).
    sent: Mapped[int] = mapped_column(default=0)
    #: Of those, not bounced.
    delivered: Mapped[int] = mapped_column(default=0)
    #: Deliveries whose first human open (click) happened that day: summing days gives unique opens.
    opens: Mapped[int] = mapped_column(default=0)
    clicks: Mapped[int] = mapped_column(default=0)
    unsubscribes: Mapped[int] = mapped_column(default=0)
    bounces: Mapped[int] = mapped_column(default=0)
    complaints: Mapped[int] = mapped_column(default=0)
    #: Leads for whom the engine skipped the step because they knew what it teaches.
    skipped: Mapped[int] = mapped_column(default=0)
    #: Events flagged as bots (excluded from every human count above).
    bot_events: Mapped[int] = mapped_column(default=0)
    refreshed_at: Mapped[datetime]


class TopicDayCount(Base):
    """Leads of a campaign per day they enrolled, topic and knowledge level (the topics report).

    Kept by ``reports/summaries.py``: a refresh recounts only the (campaign, day) groups whose
    leads gained knowledge or enrolled since its last run (``ReportWatermark``).
    """

    __tablename__ = "report_topic_day"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"), primary_key=True)
    #: The UTC day the enrollments began.
    day: Mapped[date] = mapped_column(primary_key=True)
    topic: Mapped[str] = mapped_column(String(80), primary_key=True)
    level: Mapped[str] = mapped_column(String(10), primary_key=True)
    leads: Mapped[int] = mapped_column(default=0)


class ReportWatermark(Base):
    """How far a summary's refresh has read an append-only table (by its id), and when it ran.

    ``seen_id`` is the largest id at the last run; ``scan_from`` the one of the run before: a
    refresh reads ids above ``scan_from``, so each id is read by two runs in a row and a row
    whose transaction committed late (after a run saw a higher id) is still counted.
    """

    __tablename__ = "report_watermark"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    scan_from: Mapped[int] = mapped_column(BigInteger, default=0)
    seen_id: Mapped[int] = mapped_column(BigInteger, default=0)
    refreshed_at: Mapped[datetime]


class EngagedLeadMonth(Base):
    """The leads that engaged (a human click, reply, form, webinar or meeting) in a month: the
    monthly summary's "under development" reads these (≤ one row per lead and month) instead of
    every engagement event of the month. Kept by ``reports/summaries.py`` from the events' ids."""

    __tablename__ = "report_engaged_month"

    #: The first day of the month (UTC).
    month: Mapped[date] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("lead.id", ondelete="CASCADE"), primary_key=True)
