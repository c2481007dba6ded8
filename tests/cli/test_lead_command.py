"""``python -m nurture_mail lead EMAIL`` shows what sales and marketing ask first: the scores with
every point explained, the handoffs, and hygiene flags."""
from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import select
from support.sales import hand_off

from nurture_mail.cli import main
from nurture_mail.extensions import redis_url_of
from nurture_mail.models import Lead
from nurture_mail.scoring.service import rescore_leads


def run_lead(platform, email: str) -> str:
    config = platform.svc.config
    env = {"DATABASE_URL": config.database_url, "REDIS_URL": redis_url_of(platform.svc.redis),
           "INSTANCE_PATH": str(config.instance_path), "SECRET_KEY": config.secret_key}
    result = CliRunner().invoke(main, ["lead", email], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_lead_shows_scores_with_reasons_and_its_handoff(platform, team):
    platform.add_lead("ops@harbor.example", first_name="Ines", company="Harbor Logistics", region="EMEA",
                      employees=900, industry_naics="511210")
    platform.enroll("ops@harbor.example")
    assert "score     not scored yet" in run_lead(platform, "ops@harbor.example")

    with platform.svc.db.session() as session:
        lead_id = session.scalar(select(Lead.id).where(Lead.email == "ops@harbor.example"))
        rescore_leads(session, platform.svc.config, [lead_id], platform.clock.now())
    handoff_id = hand_off(platform, "ops@harbor.example", detail="clicked 'Talk to a specialist'")

    output = run_lead(platform, "ops@harbor.example")
    assert "status=handed_off" in output
    assert "  score     fit 40, engagement 0 (as of 2026-03-02 14:00 UTC)" in output
    assert "    fit        +15 industry NAICS 511210 is software and IT services" in output
    assert "    fit        +20 employees 900: mid-market (200–2,000)" in output
    assert "    fit        +5 region EMEA: sales coverage (EMEA)" in output
    assert (f"  handoff   #{handoff_id} notified to ava@sales.example on 2026-03-02 14:00 UTC: "
            "clicked 'Talk to a specialist'") in output


def test_lead_shows_hygiene_flags(platform):
    platform.add_lead("info@harbor.example", hygiene=["role_account"])
    output = run_lead(platform, "info@harbor.example")
    assert "  hygiene   role_account (never enrolled nor handed off)" in output
