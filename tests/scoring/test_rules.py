"""``campaigns/scoring.yaml``: strictly validated, every problem named by file and path; cached by mtime."""
from __future__ import annotations

import os
import textwrap

import pytest
import yaml

from nurture_mail.config import Config
from nurture_mail.engine.scoring import HandoffRule
from nurture_mail.scoring.rules import (
    ScoringRulesError,
    campaign_rules,
    load_rules,
    parse_override,
    read_rules_file,
)

VALID = """\
fit:
  industry:
    - {label: software, sic: ["737"], naics: ["5112"], points: 15}
  employees:
    - {label: mid-market, min: 200, max: 2000, points: 20}
  revenue:
    - {label: big enough, min: 20000000, points: 10}
  region:
    - {label: covered, regions: [emea], points: 5}
  qualification: {budget: 6, urgency: 6}
engagement:
  half_life_days: 14
  weights: {open: 1, click: 5, hand_raiser: 30}
handoff: {engagement_at_least: 25, fit_at_least: 40, hand_raiser: true}
"""


@pytest.fixture
def write(tmp_path):
    def _write(content) -> os.PathLike:
        path = tmp_path / "campaigns" / "scoring.yaml"
        path.parent.mkdir(exist_ok=True)
        text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return _write


def problems(write, data) -> list[str]:
    with pytest.raises(ScoringRulesError) as info:
        read_rules_file(write(data))
    return [str(p) for p in info.value.problems]


def test_the_shipped_rules_file_is_valid():
    rules = read_rules_file(Config.scoring_rules_path)
    assert rules.handoff == HandoffRule(engagement_at_least=25, fit_at_least=40, hand_raiser=True)
    assert rules.engagement.weights["hand_raiser"] > rules.engagement.weights["click"] > rules.engagement.weights["open"]
    assert set(rules.fit.qualification) == {
        "industry_code", "firmographics", "decision_makers_identified", "environment_documented",
        "decision_maker_engaged", "pain_validated", "decision_process_timeframe", "budget",
        "competitive_landscape", "urgency"}


def test_valid_file_parses(write):
    rules = read_rules_file(write(VALID))
    assert rules.fit.industry[0].sic == ("737",)
    assert rules.fit.revenue[0].max is None
    assert rules.engagement.half_life_days == 14
    assert dict(rules.fit.qualification) == {"budget": 6, "urgency": 6}


def test_every_problem_is_named_with_file_and_path(write):
    data = yaml.safe_load(VALID)
    data["fit"]["employees"][0]["min"] = "lots"
    data["fit"]["industry"][0]["sic"] = ["73a"]
    data["fit"]["qualification"]["budgte"] = 3
    data["fit"]["region"][0]["regions"] = []
    data["engagement"]["weights"]["clik"] = 4
    data["engagement"]["weights"]["open"] = -1
    data["engagement"]["half_life_days"] = 0
    data["handoff"]["hand_raiser"] = "yes"
    data["handof"] = {}
    assert problems(write, data) == [
        "campaigns/scoring.yaml: handof: unknown key (did you mean 'handoff'?); expected one of engagement, fit, handoff",
        "campaigns/scoring.yaml: fit.industry[0].sic[0]: expected a code prefix of up to 8 digits "
        "(quote it to keep leading zeros), got '73a'",
        "campaigns/scoring.yaml: fit.employees[0].min: expected a number, got 'lots'",
        "campaigns/scoring.yaml: fit.region[0].regions: expected a non-empty list of region names, got []",
        "campaigns/scoring.yaml: fit.qualification.budgte: unknown qualification attribute (did you mean 'budget'?)",
        "campaigns/scoring.yaml: engagement.weights.clik: unknown key (did you mean 'click'?); expected one of "
        "click, form, hand_raiser, meeting, open, reply, webinar",
        "campaigns/scoring.yaml: engagement.weights.open: must be at least 0, got -1",
        "campaigns/scoring.yaml: engagement.half_life_days: must be greater than 0, got 0",
        "campaigns/scoring.yaml: handoff.hand_raiser: expected true or false, got 'yes'",
    ]


def test_engagement_is_required_and_ranges_need_a_bound(write):
    found = problems(write, {"fit": {"employees": [{"label": "any", "points": 1}]}})
    assert found == [
        "campaigns/scoring.yaml: fit.employees[0]: expected min and/or max",
        "campaigns/scoring.yaml: engagement: required: weights and half_life_days",
    ]


def test_min_above_max_and_missing_label(write):
    found = problems(write, VALID.replace("{label: mid-market, min: 200, max: 2000", "{min: 2000, max: 200"))
    assert found == [
        "campaigns/scoring.yaml: fit.employees[0].label: required: the words a breakdown line shows",
        "campaigns/scoring.yaml: fit.employees[0]: min 2000 is above max 200",
    ]


def test_invalid_yaml_names_the_line(write):
    [problem] = problems(write, "fit: [\n")
    assert problem.startswith("campaigns/scoring.yaml: line 2, column 1: invalid YAML")


def test_rules_are_cached_until_the_file_changes(write):
    path = write(VALID)
    first = load_rules(path)
    assert load_rules(path) is first
    write(VALID.replace("half_life_days: 14", "half_life_days: 7"))
    os.utime(path, ns=(1, 1))  # a new mtime, even on a coarse clock
    assert load_rules(path).engagement.half_life_days == 7


def test_a_missing_file_is_an_error_naming_it(tmp_path):
    with pytest.raises(ScoringRulesError, match="scoring.yaml: cannot read file"):
        load_rules(tmp_path / "campaigns" / "scoring.yaml")


def test_campaign_override_applies_on_top_of_the_defaults(write):
    base = read_rules_file(write(VALID))
    rules = campaign_rules(base, {"fit_at_least": None, "scoring": {"weights": {"click": 9}}}, "campaigns/c.yaml")
    assert rules.handoff == HandoffRule(engagement_at_least=25, fit_at_least=None, hand_raiser=True)
    assert rules.engagement.weights == {"open": 1, "click": 9, "hand_raiser": 30}
    assert campaign_rules(base, {}, "x") is base


def test_a_bad_stored_override_raises_with_its_source():
    with pytest.raises(ScoringRulesError) as info:
        parse_override({"engagement_at_least": "high", "scoring": {"half_life": 3}}, "campaigns/c.yaml")
    assert [str(p) for p in info.value.problems] == [
        "campaigns/c.yaml: handoff.engagement_at_least: expected a number, got 'high'",
        "campaigns/c.yaml: handoff.scoring.half_life: unknown key (did you mean 'half_life_days'?); "
        "expected one of half_life_days, weights",
    ]


# -- handoff rule defaults, industry and region -------------------------------------------------


def test_validate_rules_file_lists_every_problem_and_never_raises(write, tmp_path):
    """``init`` and ``run`` refuse to start on these lines."""
    from nurture_mail.scoring.rules import validate_rules_file

    assert validate_rules_file(Config.scoring_rules_path) == []
    data = yaml.safe_load(VALID)
    data["engagement"]["half_life_days"] = 0
    data["fit"]["qualification"]["budgte"] = 6
    assert validate_rules_file(write(data)) == [
        "campaigns/scoring.yaml: fit.qualification.budgte: unknown qualification attribute (did you mean 'budget'?)",
        "campaigns/scoring.yaml: engagement.half_life_days: must be greater than 0, got 0",
    ]
    [broken] = validate_rules_file(write("fit: [\n"))
    assert broken.startswith("campaigns/scoring.yaml: line 2, column 1: invalid YAML: ")
    [missing] = validate_rules_file(tmp_path / "nowhere" / "scoring.yaml")
    assert missing.startswith("nowhere/scoring.yaml: cannot read file:")


def test_without_a_handoff_block_the_default_rule_applies(write):
    """DESIGN §5's default (both thresholds, or a hand-raiser click), not "score route off"."""
    data = yaml.safe_load(VALID)
    del data["handoff"]
    assert read_rules_file(write(data)).handoff == HandoffRule(25, 40, True)
    data["handoff"] = {"fit_at_least": 30}
    assert read_rules_file(write(data)).handoff == HandoffRule(25, 30, True)
    data["handoff"] = {"engagement_at_least": None, "fit_at_least": None}  # explicitly off
    assert read_rules_file(write(data)).handoff == HandoffRule(None, None, True)


def test_industry_names_are_validated(write):
    data = yaml.safe_load(VALID)
    data["fit"]["industry"] = [{"label": "software", "names": ["SaaS", ""], "points": 15},
                               {"label": "finance", "names": ["Banking"], "points": 15},
                               {"label": "nothing", "points": 1}]
    assert problems(write, data) == [
        "campaigns/scoring.yaml: fit.industry[0].names: expected a non-empty list of industry names, got ['SaaS', '']",
        "campaigns/scoring.yaml: fit.industry[2]: expected sic and/or naics code prefixes, and/or industry names",
    ]
    data["fit"]["industry"] = data["fit"]["industry"][1:2]
    assert read_rules_file(write(data)).fit.industry[0].names == ("Banking",)


def test_the_shipped_regions_are_the_sales_regions_and_countries():
    """AMER/EMEA/APAC of campaigns/sales_team.yaml, plus country names and codes."""
    from nurture_mail.engine.scoring import LeadFacts, fit_score

    rules = read_rules_file(Config.scoring_rules_path)
    team = yaml.safe_load((Config.scoring_rules_path.parent / "sales_team.yaml").read_text(encoding="utf-8"))
    for region in {t["region"] for t in team["territories"] if t.get("region")}:
        assert fit_score(LeadFacts(region=region), rules).total == 5, region
    for region, label in [("Spain", "EMEA"), ("DE", "EMEA"), ("no", "EMEA"), ("United States", "AMER"),
                          ("usa", "AMER"), ("north-america", "AMER"), ("Japan", "APAC"), ("AU", "APAC")]:
        [line] = fit_score(LeadFacts(region=region), rules).lines
        assert line.text == f"+5 region {region}: sales coverage ({label})"


def test_a_realistic_share_of_the_demo_leads_reaches_the_fit_threshold():
    """Samples/leads.csv has a free-text industry, employees and a sales region."""
    import csv

    from nurture_mail.engine.scoring import LeadFacts, fit_score

    rules = read_rules_file(Config.scoring_rules_path)
    path = Config.scoring_rules_path.parent.parent / "samples" / "leads.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    fits = {row["email"]: fit_score(LeadFacts(industry_name=row["industry"], employees=int(row["employees"]),
                                              region=row["region"]), rules).total for row in rows}
    ready = [email for email, fit in fits.items() if fit >= rules.handoff.fit_at_least]
    assert 0.3 <= len(ready) / len(rows) <= 0.6, fits  # the target buyer, not everyone
    assert fits["dan.whitfield@ledgerstone.example"] == 40  # Financial Services, 640, AMER
    assert fits["maria.lopez@brightpathhealth.example"] == 40  # Healthcare, 850, AMER
    assert fits["jose.ramirez@corvidlogistics.example"] == 25  # Logistics: no industry points
