"""``/api/v1/enrollments``: enroll with the topics a lead already knows; pause, resume, exit."""
from __future__ import annotations

from typing import Any

from flask import url_for
from sqlalchemy.orm import Session

from .. import services
from ..exceptions import NotFound
from ..models import Campaign, Enrollment
from ..nurture import enrollments
from .common import api_blueprint, domain_problem, enrollment_dict, lead_by_ref, not_found_doc
from .problems import ApiProblem
from .schemas import EnrollIn, EnrollmentOut, ReasonIn
from .security import current_api_user, requires

bp = api_blueprint("api_enrollments", __name__, "/api/v1/enrollments", "Enrollments of leads in campaigns")


def _enrollment_or_404(session: Session, enrollment_id: int) -> Enrollment:
    enrollment = session.get(Enrollment, enrollment_id)
    if enrollment is None:
        raise ApiProblem(404, f"no enrollment with id {enrollment_id}", field="enrollment_id")
    return enrollment


def _out(session: Session, enrollment: Enrollment) -> dict[str, Any]:
    return enrollment_dict(enrollment, session.get_one(Campaign, enrollment.campaign_id).slug)


@bp.route("", methods=["POST"])
@requires(bp, "enrollments:write")
@bp.arguments(EnrollIn)
@bp.response(201, EnrollmentOut)
@not_found_doc(bp)
def create_enrollment(data: dict[str, Any]):
    """Enroll (or re-activate) a lead; ``knows`` topics are marked known, so their steps are skipped."""
    svc = services()
    now = svc.clock.now()
    with svc.db.session() as session:
        lead = lead_by_ref(session, data.get("lead_id"), data.get("email"))
        try:
            campaign = enrollments.find_campaign(session, data["campaign"])
        except NotFound as error:
            raise ApiProblem(404, str(error), field="campaign") from None
        try:
            enrollment = enrollments.enroll(session, lead, campaign, now, by=current_api_user().email,
                                            knows=data["knows"], source="api",
                                            default_timezone=svc.config.default_timezone)
        except enrollments.EnrollmentRefused as error:
            raise ApiProblem(409, f"this lead cannot be enrolled: {error.reason}",
                             field="lead_id" if "lead_id" in data else "email",
                             type_="/api/problems/enrollment-refused") from None
        out = _out(session, enrollment)
    return out, 201, {"Location": url_for("api_enrollments.get_enrollment", enrollment_id=out["id"])}


@bp.route("/<int(min=1, max=2147483647):enrollment_id>", methods=["GET"])
@requires(bp, "leads:read")
@bp.response(200, EnrollmentOut)
@not_found_doc(bp)
def get_enrollment(enrollment_id: int):
    """One enrollment: state, touches sent, next send."""
    with services().db.session() as session:
        return _out(session, _enrollment_or_404(session, enrollment_id))


def _transition(enrollment_id: int, reason: str | None, action: str) -> dict[str, Any]:
    svc = services()
    now = svc.clock.now()
    who = current_api_user().email
    with svc.db.session() as session:
        enrollment = _enrollment_or_404(session, enrollment_id)
        try:
            if action == "pause":
                enrollments.pause(session, enrollment, now, by=who, reason=reason)
            elif action == "resume":
                enrollments.resume(session, enrollment, now, by=who, default_timezone=svc.config.default_timezone)
            else:
                enrollments.exit_enrollment(session, enrollment, now, by=who, reason=reason)
        except enrollments.EnrollmentError as error:
            refused = isinstance(error, enrollments.ResumeRefused)
            raise domain_problem(error, type_="/api/problems/enrollment-refused" if refused else "about:blank") from None
        session.flush()
        return _out(session, enrollment)


@bp.route("/<int(min=1, max=2147483647):enrollment_id>/pause", methods=["POST"])
@requires(bp, "enrollments:write")
@bp.arguments(ReasonIn, required=False)
@bp.response(200, EnrollmentOut)
@not_found_doc(bp)
def pause(data: dict[str, Any], enrollment_id: int):
    """Stop sending until resumed (an active enrollment only)."""
    return _transition(enrollment_id, data.get("reason"), "pause")


@bp.route("/<int(min=1, max=2147483647):enrollment_id>/resume", methods=["POST"])
@requires(bp, "enrollments:write")
@bp.arguments(ReasonIn, required=False)
@bp.response(200, EnrollmentOut)
@not_found_doc(bp)
def resume(data: dict[str, Any], enrollment_id: int):
    """Send again from where it stopped, at the next slot in the campaign's send window."""
    return _transition(enrollment_id, data.get("reason"), "resume")


@bp.route("/<int(min=1, max=2147483647):enrollment_id>/exit", methods=["POST"])
@requires(bp, "enrollments:write")
@bp.arguments(ReasonIn, required=False)
@bp.response(200, EnrollmentOut)
@not_found_doc(bp)
def exit_enrollment(data: dict[str, Any], enrollment_id: int):
    """End the enrollment for good (enrolling again re-activates it)."""
    return _transition(enrollment_id, data.get("reason"), "exit")
