"""The sales team: reps (closers in the incoming group, territory owners, managers) and territories."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base


class SalesRep(Base):
    __tablename__ = "sales_rep"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    #: The app user this rep signs in as (optional: a rep can work from email links only).
    user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"), index=True)
    #: A closer in the incoming group, who receives new handoffs in turn.
    incoming: Mapped[bool] = mapped_column(default=False)
    #: Unavailable reps (holiday, full pipeline) are skipped by routing.
    available: Mapped[bool] = mapped_column(default=True)
    #: Away (holiday, training) until this instant, set by the rep in the web UI: routing skips
    #: the rep until then. Kept apart from ``available`` (the team file's) so a sync never
    #: clears it; it lapses by itself.
    away_until: Mapped[datetime | None]
    away_note: Mapped[str | None] = mapped_column(String(200))
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("sales_rep.id", ondelete="SET NULL"))
    #: When this rep last received a handoff: routing picks the least recently assigned closer.
    last_assigned_at: Mapped[datetime | None]
    created_at: Mapped[datetime]

    manager: Mapped["SalesRep | None"] = relationship(remote_side="SalesRep.id")

    def is_away(self, now: datetime) -> bool:
        return self.away_until is not None and self.away_until > now

    def routable(self, now: datetime | None) -> bool:
        """Available in the team file and not marked away at ``now`` (None: ignore away)."""
        return self.available and (now is None or not self.is_away(now))


class Territory(Base):
    """A region and/or industry owned by one rep; an unset field matches any lead."""

    __tablename__ = "territory"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    region: Mapped[str | None] = mapped_column(String(64))
    #: SIC or NAICS code prefix (``73`` matches 7372).
    industry: Mapped[str | None] = mapped_column(String(8))
    owner_id: Mapped[int] = mapped_column(ForeignKey("sales_rep.id", ondelete="RESTRICT"), index=True)

    owner: Mapped[SalesRep] = relationship()
