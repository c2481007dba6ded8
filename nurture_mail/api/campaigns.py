"""``/api/v1/campaigns``: list, get, and the journey preview of a lead in a campaign."""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .. import services
from ..models import Campaign, Enrollment
from .common import api_blueprint, lead_or_404, not_found_doc
from .problems import ApiProblem
from .schemas import CampaignDetail, CampaignOut, JourneyOut
from .security import requires

bp = api_blueprint("api_campaigns", __name__, "/api/v1/campaigns", "Campaigns and journey previews")


def _campaign_or_404(session: Session, slug: str) -> Campaign:
    campaign = None if "\x00" in slug else session.scalar(select(Campaign).where(Campaign.slug == slug))
    if campaign is None:
        raise ApiProblem(404, f"no campaign {slug!r}", field="slug")
    return campaign


def _counts(session: Session) -> dict[int, dict[str, int]]:
    counts: dict[int, dict[str, int]] = {}
    for campaign_id, state, n in session.execute(
        select(Enrollment.campaign_id, Enrollment.state, func.count()).group_by(Enrollment.campaign_id, Enrollment.state)
    ).tuples():
        counts.setdefault(campaign_id, {})[state.value] = n
    return counts


def _campaign_dict(campaign: Campaign, counts: dict[str, int]) -> dict[str, Any]:
    return {"slug": campaign.slug, "name": campaign.name, "description": campaign.description,
            "active": campaign.active, "max_touches": campaign.max_touches,
            "cadence_seconds": campaign.cadence_seconds, "enrolled": counts}


@bp.route("", methods=["GET"])
@requires(bp, "campaigns:read")
@bp.response(200, CampaignOut(many=True))
def list_campaigns():
    """Every campaign synced from the campaign files, with its enrollments by state."""
    with services().db.session() as session:
        counts = _counts(session)
        return [_campaign_dict(c, counts.get(c.id, {}))
                for c in session.scalars(select(Campaign).order_by(Campaign.slug))]


@bp.route("/<string(maxlength=80):slug>", methods=["GET"])
@requires(bp, "campaigns:read")
@bp.response(200, CampaignDetail)
@not_found_doc(bp)
def get_campaign(slug: str):
    """One campaign with its steps (what each teaches and requires)."""
    with services().db.session() as session:
        campaign = _campaign_or_404(session, slug)
        data = _campaign_dict(campaign, _counts(session).get(campaign.id, {}))
        data["steps"] = [{"key": s.key, "position": s.position, "stage": s.stage.value, "subject": s.subject,
                          "teaches": list(s.teaches or []), "requires": list(s.requires or [])}
                         for s in sorted(campaign.steps, key=lambda s: s.position)]
        return data


@bp.route("/<string(maxlength=80):slug>/journey/<int(min=1, max=2147483647):lead_id>", methods=["GET"])
@requires(bp, "campaigns:read")
@bp.response(200, JourneyOut)
@not_found_doc(bp)
def journey(slug: str, lead_id: int):
    """What the lead would receive next in this campaign, when, and why other steps are skipped."""
    from ..nurture.preview import journey_for

    svc = services()
    with svc.db.session() as session:
        lead = lead_or_404(session, lead_id)
        campaign = _campaign_or_404(session, slug)
        preview = journey_for(session, svc, lead.email, slug)
        touches = []
        for touch in preview.touches:
            item = dict(vars(touch))
            item["subject_template"] = touch.subject
            item["subject"] = _render_subject(svc, lead, campaign, touch.step_key, touch.subject)
            touches.append(item)
    return {
        "lead_id": lead_id, "campaign": preview.campaign_slug, "state": preview.state,
        "timezone": preview.timezone, "touches_sent": preview.touches_sent, "knowledge": preview.knowledge,
        "touches": touches, "skipped": [vars(s) for s in preview.skipped],
        "outcome": preview.outcome,
    }


def _render_subject(svc, lead, campaign: Campaign, step_key: str, source: str) -> str:
    """The subject as this lead would get it: the step's template rendered in the mail sandbox."""
    from jinja2 import TemplateError

    from ..mail.compose import LeadView, SenderView

    config = svc.config
    context = {"lead": LeadView.of(lead), "campaign": {"name": campaign.name, "slug": campaign.slug},
               "step": {"key": step_key, "subject": source},
               "sender": SenderView(config.sender_name, config.sender_email, config.sender_address)}
    try:
        return " ".join(svc.renderer.subject(source).render(context).split())
    except (TemplateError, TypeError, ValueError):  # a broken template: show it as written
        return source
