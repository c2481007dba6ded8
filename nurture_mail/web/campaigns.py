"""Campaign pages: the list with its counts, a campaign with its topic map and step funnel,
pause and resume, and the campaign editor (form -> diff -> save and sync) over the YAML file."""
from __future__ import annotations

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from .. import services
from ..auth import role_required
from ..campaigns import editor
from ..campaigns.control import pause_campaign, resume_campaign
from ..campaigns.stats import campaign_counts, step_counts
from ..exceptions import CampaignDefinitionError, InvalidInput, NotFound
from ..models import STAGE_ORDER, Campaign, Stage, Step, Topic
from . import errors
from .topicmap import topic_map

bp = Blueprint("campaigns", __name__, url_prefix="/campaigns", template_folder="templates")
errors.install(bp)

STAGES = [s.value for s in sorted(Stage, key=lambda s: STAGE_ORDER[s])]


def _campaign_or_404(session, slug: str) -> Campaign:
    campaign = session.scalar(select(Campaign).where(Campaign.slug == slug)
                              .options(selectinload(Campaign.steps).selectinload(Step.links)))
    if campaign is None:
        abort(404)
    return campaign


@bp.get("/")
@role_required("campaigns:read")
def index() -> str:
    with services().db.session() as session:
        campaigns = list(session.scalars(select(Campaign).order_by(Campaign.active.desc(), Campaign.name)))
        counts = campaign_counts(session, [c.id for c in campaigns])
        rows = [{"slug": c.slug, "name": c.name, "description": c.description, "active": c.active,
                 "steps": sum(1 for s in c.steps if s.active and s.alternate_of_id is None),
                 "source": c.source, "counts": counts[c.id]} for c in campaigns]
    return render_template("campaigns/index.html", campaigns=rows,
                           can_write=current_user.can("campaigns:write"))


@bp.get("/<slug>")
@role_required("campaigns:read")
def show(slug: str) -> str:
    with services().db.session() as session:
        campaign = _campaign_or_404(session, slug)
        steps = [s for s in campaign.steps if s.active]
        slugs = sorted({t for s in steps for t in [*(s.teaches or []), *(s.requires or [])]})
        topics = {t.slug: t for t in session.scalars(select(Topic).where(Topic.slug.in_(slugs)))}
        ordered_topics = sorted(topics.values(), key=lambda t: (STAGE_ORDER[t.stage], t.slug))
        tmap = topic_map([(t.slug, t.name, t.stage.value) for t in ordered_topics],
                         [(list(s.teaches or []), list(s.requires or [])) for s in steps if s.alternate_of_id is None])
        per_step = step_counts(session, campaign.id)
        primaries = {s.id: s for s in steps}
        rows = []
        for s in steps:
            rows.append({
                "key": s.key, "subject": s.subject, "subject_example": _example_subject(campaign, s),
                "stage": s.stage.value, "teaches": list(s.teaches or []),
                "requires": list(s.requires or []), "alternate_of": primaries[s.alternate_of_id].key
                if s.alternate_of_id in primaries else None, "template": s.html_template.removesuffix(".html"),
                "links": [{"name": link.name, "topic": link.topic, "hand_raiser": link.hand_raiser}
                          for link in s.links],
                "counts": per_step.get(s.id),
            })
        data = {"slug": campaign.slug, "name": campaign.name, "description": campaign.description,
                "active": campaign.active, "source": campaign.source, "cadence": _duration(campaign.cadence_seconds),
                "window": f"{campaign.window_start_minute // 60:02d}:{campaign.window_start_minute % 60:02d}"
                          f"–{campaign.window_end_minute // 60:02d}:{campaign.window_end_minute % 60:02d}",
                "weekdays_only": campaign.weekdays_only, "max_touches": campaign.max_touches,
                "handoff": dict(campaign.handoff_rule or {}),
                "counts": campaign_counts(session, [campaign.id])[campaign.id]}
        topic_names = {t.slug: t.name for t in topics.values()}
    return render_template("campaigns/show.html", campaign=data, steps=rows, tmap=tmap, topic_names=topic_names,
                           can_write=current_user.can("campaigns:write"))


def _example_subject(campaign: Campaign, step: Step) -> str:
    """The subject as the sample lead of the template editor would get it (the template on error)."""
    from jinja2 import TemplateError

    from ..mail.compose import LeadView
    from .templates_editor import SAMPLE_LEAD

    context = {"lead": LeadView.of(SAMPLE_LEAD), "campaign": {"name": campaign.name, "slug": campaign.slug},
               "step": {"key": step.key, "subject": step.subject}}
    try:
        return " ".join(services().renderer.subject(step.subject).render(context).split())
    except (TemplateError, TypeError, ValueError):
        return step.subject


def _duration(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [f"{days} day{'s' if days != 1 else ''}" if days else "", f"{hours} h" if hours else "",
             f"{minutes} min" if minutes else ""]
    return " ".join(p for p in parts if p) or "0"


@bp.post("/<slug>/pause")
@role_required("campaigns:write")
def pause(slug: str) -> ResponseReturnValue:
    return _set_state(slug, pause_campaign, "Paused: no new email of this campaign is queued until you resume it.")


@bp.post("/<slug>/resume")
@role_required("campaigns:write")
def resume(slug: str) -> ResponseReturnValue:
    return _set_state(slug, resume_campaign, "Resumed: due emails go out from the next scheduler tick, "
                                             "each in its lead's send window.")


def _set_state(slug: str, change, message: str) -> ResponseReturnValue:
    svc = services()
    try:
        with svc.db.session() as session:
            result = change(session, slug, by=current_user.email, now=svc.clock.now())
    except NotFound:
        abort(404)
    flash(message if result.changed else "Nothing to change: the campaign already was "
          + ("running." if result.active else "paused."), "success" if result.changed else "info")
    return redirect(url_for(".show", slug=slug), code=303)


# -- the editor -------------------------------------------------------------------------------


def _file_for(slug: str, new: bool = False) -> editor.CampaignFile:
    config = services().config
    source = None
    if not new:
        with services().db.session() as session:
            source = session.scalar(select(Campaign.source).where(Campaign.slug == slug))
        if source is None:
            abort(404)
    try:
        return editor.campaign_file(config.campaigns_dir, slug, source)
    except InvalidInput:
        abort(404)


def _render_editor(file: editor.CampaignFile, text: str, *, new: bool, problems=(), status: int = 200):
    try:
        doc = editor.parse(text, file.source)
    except CampaignDefinitionError as exc:
        doc, problems = editor.parse(file.text or editor.new_campaign_text("new-campaign", "New campaign")), \
            exc.problems
    values = editor.form_values(doc)
    fields = editor.field_names(values)
    field_errors = editor.field_errors(problems, fields)
    # Steps open in the form: those with a problem, or all of a short campaign; others fold.
    with_errors = {editor.index_of(name)[0] for name in field_errors if name.startswith("steps[")}
    open_steps = set(range(len(values["steps"]))) if len(values["steps"]) <= 2 else with_errors
    with services().db.session() as session:
        known_topics = sorted(session.scalars(select(Topic.slug)))
    return render_template(
        "campaigns/edit.html", file=file, values=values, new=new, stages=STAGES,
        errors=field_errors, problem_count=len(problems), open_steps=open_steps, error_steps=with_errors,
        topic_slugs=sorted({*known_topics, *(t["slug"] for t in values["topics"] if t["slug"])}),
        base_hash=request.form.get("base_hash") or file.hash, text=text,
    ), status


@bp.get("/new")
@role_required("campaigns:write")
def new() -> ResponseReturnValue:
    config = services().config
    file = editor.CampaignFile(config.campaigns_dir / "new-campaign.yaml", "campaigns/new-campaign.yaml", False,
                               editor.folder_writable(config.campaigns_dir), "")
    return _render_editor(file, editor.new_campaign_text("new-campaign", "New campaign"), new=True)


@bp.get("/<slug>/edit")
@role_required("campaigns:write")
def edit(slug: str) -> ResponseReturnValue:
    file = _file_for(slug)
    if not file.exists:
        flash(f"{file.source} is not in the campaigns folder on this server, so there is nothing to edit here.",
              "error")
        return redirect(url_for(".show", slug=slug), code=303)
    return _render_editor(file, file.text, new=False)


@bp.post("/new")
@role_required("campaigns:write")
def review_new() -> ResponseReturnValue:
    slug = (request.form.get("slug") or "").strip()
    config = services().config
    try:
        file = editor.campaign_file(config.campaigns_dir, slug)
    except InvalidInput as exc:
        file = editor.CampaignFile(config.campaigns_dir / "new-campaign.yaml", "campaigns/new-campaign.yaml", False,
                                   editor.folder_writable(config.campaigns_dir), "")
        base = request.form.get("new_text") or editor.new_campaign_text("new-campaign", "New campaign")
        doc = editor.apply_form(editor.parse(base), request.form, new=True)
        from ..exceptions import Problem

        return _render_editor(file, editor.dump(doc), new=True,
                              problems=[Problem(file.source, "slug", str(exc).removeprefix("slug: "))], status=422)
    if file.exists:
        from ..exceptions import Problem

        base = request.form.get("new_text") or editor.new_campaign_text(slug, "New campaign")
        doc = editor.apply_form(editor.parse(base), request.form, new=True)
        return _render_editor(file, editor.dump(doc), new=True, status=422, problems=[
            Problem(file.source, "slug", f"{file.source} exists already; pick another slug or edit that campaign")])
    form = request.form.copy()
    for key in [k for k in form if k.endswith(".template")]:
        if form[key].startswith("new-campaign/"):  # the skeleton's folder follows the chosen slug
            form[key] = f"{slug}/" + form[key].removeprefix("new-campaign/")
    return _review(file, new=True, form=form)


@bp.post("/<slug>/edit")
@role_required("campaigns:write")
def review(slug: str) -> ResponseReturnValue:
    return _review(_file_for(slug), new=False)


def _review(file: editor.CampaignFile, *, new: bool, form=None) -> ResponseReturnValue:
    """Apply the form to the file (or to the text being edited), validate, then show the diff."""
    config = services().config
    form = request.form if form is None else form
    base_text = request.form.get("new_text") or file.text or editor.new_campaign_text("new-campaign", "New campaign")
    if request.form.get("action") == "continue":  # back from the diff: the form as it was
        return _render_editor(file, base_text, new=new)
    try:
        doc = editor.parse(base_text, file.source)
    except CampaignDefinitionError as exc:
        return _render_editor(file, file.text, new=new, problems=exc.problems, status=422)
    text = editor.dump(editor.apply_form(doc, form, new=new))
    result = editor.validate_text(text, source=file.source, templates_dir=config.templates_dir,
                                  campaigns_dir=config.campaigns_dir, own_path=file.path if file.exists else None)
    if not result.ok or result.spec is None:
        return _render_editor(file, text, new=new, problems=result.problems, status=422)
    return render_template("campaigns/review.html", file=file, new=new, text=text,
                           diff=editor.diff_lines(file.text, text, file.source), base_hash=request.form.get(
                               "base_hash") or file.hash, new_templates=sorted(result.new_templates),
                           slug=result.spec.slug, changed=text != file.text)


@bp.post("/save")
@role_required("campaigns:write")
def save() -> ResponseReturnValue:
    """Write the reviewed text (validated again here), then sync; or hand it over as a download."""
    svc = services()
    text = (request.form.get("new_text") or "").replace("\r\n", "\n")
    slug = (request.form.get("slug") or "").strip()
    new = request.form.get("new") == "1"
    try:
        file = editor.campaign_file(svc.config.campaigns_dir, slug, None if new else _source_of(slug))
    except InvalidInput:
        abort(400)
    if request.form.get("action") == "download":
        return _download(text, file.path.name)
    try:
        with svc.db.session() as session:
            result = editor.save_campaign(session, file, text, base_hash=request.form.get("base_hash", ""),
                                          templates_dir=svc.config.templates_dir,
                                          campaigns_dir=svc.config.campaigns_dir, now=svc.clock.now())
    except CampaignDefinitionError as exc:
        return _render_editor(file, text, new=new, problems=exc.problems, status=422)
    except InvalidInput as exc:
        flash(str(exc).removeprefix("file: "), "error")
        return _render_editor(file, text, new=new, status=409)
    made = f" Created {', '.join(result.templates_written)} from the starter." if result.templates_written else ""
    flash(f"Saved {file.source} and synced it ({result.outcome}).{made}", "success")
    return redirect(url_for(".show", slug=slug), code=303)


def _source_of(slug: str) -> str:
    with services().db.session() as session:
        source = session.scalar(select(Campaign.source).where(Campaign.slug == slug))
    if source is None:
        abort(404)
    return source


def _download(text: str, name: str) -> Response:
    response = Response(text, mimetype="application/yaml")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@bp.get("/<slug>/file")
@role_required("campaigns:read")
def download(slug: str) -> Response:
    file = _file_for(slug)
    if not file.exists:
        abort(404)
    return _download(file.text, file.path.name)
