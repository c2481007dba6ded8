"""The reports: ``/reports``, each at ``/reports/<name>`` with its table at ``/reports/<name>.csv``.

Every page and its CSV come from one ``run_report`` call (``reports/``): the CSV is the
table the page shows, the same rows and the same rounding. The monthly summary page also
sends the summary now and holds the signed-in user's subscription to it.
"""
from __future__ import annotations

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from .. import services
from ..auth import role_required
from ..exceptions import InvalidInput
from ..models import User
from ..reports import REPORTS, run_report
from ..reports.charts import render_svg
from ..reports.common import format_cell
from . import errors

bp = Blueprint("reports", __name__, url_prefix="/reports", template_folder="templates")
errors.install(bp)

#: Query parameters a report page passes on to its CSV link and its forms.
PARAMS = ("from", "to", "campaign", "month")


def _params() -> dict[str, str]:
    return {k: request.args[k] for k in PARAMS if request.args.get(k)}


@bp.app_template_filter("report_cell")
def report_cell(value: object, kind: str) -> str:
    """A cell as the page shows it: thousands separators for counts and money."""
    if value is None:
        return "–"
    if kind == "int":
        return f"{int(value):,}"  # type: ignore[call-overload]  # a count from a report row
    if kind == "money":
        return f"${float(value):,.2f}"  # type: ignore[arg-type]  # an amount from a report row
    return format_cell(value, kind)


@bp.get("/")
@role_required("reports:read")
def index() -> ResponseReturnValue:
    svc = services()
    with svc.db.session() as session:
        monthly = run_report("monthly", session, svc.config, svc.clock.now(), {})
    return render_template("reports/index.html", reports=REPORTS.values(), sentence=monthly.summary[0])


def _run(name: str):
    svc = services()
    if name not in REPORTS:
        abort(404)
    with svc.db.session() as session:
        return run_report(name, session, svc.config, svc.clock.now(), _params())


@bp.get("/<name>.csv")
@role_required("reports:read")
def csv(name: str) -> ResponseReturnValue:
    try:
        result = _run(name)
        table = result.table(request.args.get("table") or None)
    except InvalidInput as error:
        return Response(f"{error.field}: {error}\n", status=400, mimetype="text/plain")
    suffix = ""
    if result.range is not None:
        suffix = f"-{result.range.start}-{result.range.end}"
    filename = f"{name}{'-' + table.key if table.key != name else ''}{suffix}.csv"
    return Response("\ufeff" + table.csv(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"',
                             "Cache-Control": "no-store"})


@bp.get("/<name>")
@role_required("reports:read")
def show(name: str) -> ResponseReturnValue:
    spec = REPORTS.get(name)
    if spec is None:
        abort(404)
    try:
        result = _run(name)
    except InvalidInput as error:
        flash(f"{error.field}: {error}", "error")
        return redirect(url_for(".show", name=name), code=303)
    subscribed = False
    if name == "monthly":
        svc = services()
        with svc.db.session() as session:
            user = session.get(User, current_user.id)
            subscribed = bool(user and user.monthly_summary)
    return render_template("reports/report.html", spec=spec, result=result, chart=render_svg(result.chart),
                           params=_params(), reports=REPORTS.values(), subscribed=subscribed)


@bp.post("/monthly/send")
@role_required("reports:send")
def send_monthly() -> ResponseReturnValue:
    from ..reports.monthly_mail import send_monthly_summary

    svc = services()
    month = request.form.get("month") or None
    try:
        report = send_monthly_summary(svc, svc.clock.now(), month=month)
    except InvalidInput as error:
        flash(f"{error.field}: {error}", "error")
        return redirect(url_for(".show", name="monthly"), code=303)
    if not report.sent and not report.failed:
        flash("Nobody is subscribed to the monthly summary yet: subscribe below, then send it.", "info")
    else:
        flash(f"Monthly summary of {report.month} sent to {len(report.sent)} subscriber"
              f"{'' if len(report.sent) == 1 else 's'}"
              f"{f'; refused for {len(report.failed)}: ' + ', '.join(report.failed) if report.failed else ''}.",
              "success" if not report.failed else "error")
    return redirect(url_for(".show", name="monthly", month=report.month), code=303)


@bp.post("/monthly/subscription")
@role_required("reports:read")
def subscription() -> ResponseReturnValue:
    svc = services()
    wanted = request.form.get("subscribe") == "1"
    with svc.db.session() as session:
        user = session.get(User, current_user.id)
        if user is None:
            abort(403)
        user.monthly_summary = wanted
    flash("You will receive the monthly summary on the 1st of each month." if wanted else
          "You will no longer receive the monthly summary.", "success")
    return redirect(url_for(".show", name="monthly"), code=303)
