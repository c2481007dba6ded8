"""The leads list: search, filters and keyset pagination, read in two queries per page."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from typing import Any

from sqlalchemy import String, and_, cast, exists, func, or_, select
from sqlalchemy.orm import Session

from ..exceptions import InvalidInput
from ..models import Campaign, Delivery, DeliveryStatus, Enrollment, EnrollmentState, Lead, LeadScore, LeadStatus

__all__ = ["LeadFilters", "LeadPage", "list_leads"]

PAGE_SIZE = 50


@dataclass
class LeadFilters:
    """The list's query string, checked; ``errors`` names each field that could not be used."""

    q: str = ""
    status: str = ""
    campaign: str = ""
    source: str = ""
    engagement_min: float | None = None
    engagement_max: float | None = None
    fit_min: float | None = None
    fit_max: float | None = None
    hygiene: str = ""
    updated_since: date | None = None
    enrollment: str = ""
    delivery: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    FIELDS = ("q", "status", "campaign", "source", "engagement_min", "engagement_max", "fit_min", "fit_max",
              "hygiene", "updated_since", "enrollment", "delivery")

    @classmethod
    def parse(cls, args: Any) -> "LeadFilters":
        f = cls()
        f.q = (args.get("q") or "").strip()[:200]
        for name in ("campaign", "source", "hygiene"):
            setattr(f, name, (args.get(name) or "").strip()[:120])
        status = (args.get("status") or "").strip()
        if status and status not in LeadStatus.__members__:
            f.errors["status"] = f"unknown status {status!r}"
        else:
            f.status = status
        enrollment = (args.get("enrollment") or "").strip()
        if enrollment and enrollment not in EnrollmentState.__members__:
            f.errors["enrollment"] = f"unknown enrollment state {enrollment!r}"
        else:
            f.enrollment = enrollment
        delivery = (args.get("delivery") or "").strip()
        if delivery and delivery not in DeliveryStatus.__members__:
            f.errors["delivery"] = f"unknown delivery status {delivery!r}"
        else:
            f.delivery = delivery
        for name in ("engagement_min", "engagement_max", "fit_min", "fit_max"):
            raw = (args.get(name) or "").strip()
            if raw:
                try:
                    value = float(raw)
                    if value != value or abs(value) > 1e9:
                        raise ValueError
                    setattr(f, name, value)
                except ValueError:
                    f.errors[name] = f"not a number: {raw[:40]!r}"
        raw = (args.get("updated_since") or "").strip()
        if raw:
            try:
                f.updated_since = date.fromisoformat(raw)
            except ValueError:
                f.errors["updated_since"] = f"not a date (YYYY-MM-DD): {raw[:40]!r}"
        return f

    def as_args(self) -> dict[str, Any]:
        """The filters as query arguments (for pagination links and "clear" links)."""
        out: dict[str, Any] = {}
        for name in self.FIELDS:
            value = getattr(self, name)
            if value not in (None, ""):
                out[name] = value.isoformat() if isinstance(value, date) else (
                    f"{value:g}" if isinstance(value, float) else str(value))
        return out

    @property
    def active(self) -> bool:
        return bool(self.as_args())


@dataclass
class LeadRow:
    lead: Lead
    score: LeadScore | None
    enrollments: list[tuple[str, str]]


@dataclass
class LeadPage:
    rows: list[LeadRow]
    next_cursor: str | None


def encode_cursor(lead: Lead) -> str:
    return f"{lead.updated_at.astimezone(timezone.utc).strftime('%Y%m%dT%H%M%S.%f')}_{lead.id}"


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        at, _, ident = cursor.partition("_")
        return datetime.strptime(at, "%Y%m%dT%H%M%S.%f").replace(tzinfo=timezone.utc), int(ident)
    except ValueError:
        raise InvalidInput("not a page cursor of this list", field="cursor") from None


def _search(q: str) -> Any:
    """Leads whose email, first name, last name or company starts with ``q`` (case-insensitive);
    "nora qu" also matches first name "nora" with a last name starting "qu". Prefix matching is
    what the indexes of migration 0006 serve on PostgreSQL (``text_pattern_ops``)."""
    q = q.lower()
    conditions = [func.lower(column).startswith(q, autoescape=True)
                  for column in (Lead.email, Lead.first_name, Lead.last_name, Lead.company)]
    first, _, rest = q.partition(" ")
    if rest.strip():
        conditions.append(and_(func.lower(Lead.first_name) == first,
                               func.lower(Lead.last_name).startswith(rest.strip(), autoescape=True)))
    return or_(*conditions)


def list_leads(session: Session, filters: LeadFilters, cursor: str | None = None,
               limit: int = PAGE_SIZE) -> LeadPage:
    """One page of leads, most recently updated first."""
    query = select(Lead, LeadScore).outerjoin(LeadScore, LeadScore.lead_id == Lead.id)
    if filters.q:
        query = query.where(_search(filters.q))
    if filters.status:
        query = query.where(Lead.status == LeadStatus(filters.status))
    if filters.source:
        query = query.where(Lead.lead_source == filters.source)
    if filters.campaign or filters.enrollment:
        conditions = [Enrollment.lead_id == Lead.id]
        if filters.campaign:
            conditions += [Enrollment.campaign_id == Campaign.id, Campaign.slug == filters.campaign]
        if filters.enrollment:
            conditions.append(Enrollment.state == EnrollmentState(filters.enrollment))
        query = query.where(exists().where(*conditions))
    if filters.delivery:
        query = query.where(exists().where(Delivery.lead_id == Lead.id,
                                           Delivery.status == DeliveryStatus(filters.delivery)))
    for name, column in (("engagement", LeadScore.engagement), ("fit", LeadScore.fit)):
        low, high = getattr(filters, f"{name}_min"), getattr(filters, f"{name}_max")
        if low is not None:
            query = query.where(column >= low)
        if high is not None:
            query = query.where(column <= high)
    if filters.hygiene == "flagged":
        query = query.where(cast(Lead.hygiene, String) != "[]")
    elif filters.hygiene == "clean":
        query = query.where(or_(Lead.hygiene.is_(None), cast(Lead.hygiene, String) == "[]"))
    elif filters.hygiene:
        query = query.where(cast(Lead.hygiene, String).like(f'%"{filters.hygiene}"%'))
    if filters.updated_since:
        query = query.where(Lead.updated_at >= datetime.combine(filters.updated_since, time.min, tzinfo=timezone.utc))
    if cursor:
        at, ident = decode_cursor(cursor)
        query = query.where(or_(Lead.updated_at < at, and_(Lead.updated_at == at, Lead.id < ident)))
    rows = session.execute(query.order_by(Lead.updated_at.desc(), Lead.id.desc()).limit(limit + 1)).tuples().all()
    page = rows[:limit]
    ids = [lead.id for lead, _ in page]
    enrollments: dict[int, list[tuple[str, str]]] = {}
    if ids:
        for lead_id, slug, state in session.execute(
            select(Enrollment.lead_id, Campaign.slug, Enrollment.state)
            .join(Campaign, Campaign.id == Enrollment.campaign_id).where(Enrollment.lead_id.in_(ids))
            .order_by(Enrollment.id)
        ):
            enrollments.setdefault(lead_id, []).append((slug, EnrollmentState(state).value))
    next_cursor = encode_cursor(page[-1][0]) if len(rows) > limit else None
    return LeadPage([LeadRow(lead, score, enrollments.get(lead.id, [])) for lead, score in page], next_cursor)


def facets(session: Session) -> dict[str, list[str]]:
    """The values the filter menus offer: campaigns, lead sources, hygiene flags in use."""
    campaigns = list(session.scalars(select(Campaign.slug).order_by(Campaign.slug)))
    sources = [s for s in session.scalars(select(Lead.lead_source).where(Lead.lead_source.is_not(None))
                                          .distinct().order_by(Lead.lead_source).limit(100)) if s is not None]
    return {"campaigns": campaigns, "sources": sources}
