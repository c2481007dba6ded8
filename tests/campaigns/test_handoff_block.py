"""A campaign's ``handoff:`` block: thresholds and scoring overrides, validated like scoring.yaml."""
from __future__ import annotations

from pathlib import Path

import pytest

from nurture_mail.campaigns import CampaignLoader
from nurture_mail.exceptions import CampaignDefinitionError

ROOT = Path(__file__).resolve().parents[2]
SOURCE = "campaigns/c.yaml"


def problems_in(loader, write, data):
    with pytest.raises(CampaignDefinitionError) as info:
        loader.load_file(write("c.yaml", data))
    return info.value.problems


def test_a_full_handoff_block_loads_as_declared(loader, write, valid):
    block = {"engagement_at_least": 20, "fit_at_least": None, "hand_raiser": False,
             "scoring": {"half_life_days": 30, "weights": {"click": 8, "hand_raiser": 40}}}
    valid["handoff"] = block
    spec = loader.load_file(write("c.yaml", valid))
    assert spec.handoff_rule == block


def test_handoff_block_problems_name_their_path(loader, write, valid):
    valid["handoff"] = {"engagement": 30, "fit_at_least": "high", "hand_raiser": 1,
                        "scoring": {"weights": {"clicks": 3, "open": "x"}, "half_life_days": -2}}
    problems = [str(p) for p in problems_in(loader, write, valid)]
    assert problems == [
        f"{SOURCE}: handoff.engagement: unknown key (did you mean 'engagement_at_least'?); expected one of "
        "engagement_at_least, fit_at_least, hand_raiser, scoring",
        f"{SOURCE}: handoff.fit_at_least: expected a number, got 'high'",
        f"{SOURCE}: handoff.hand_raiser: expected true or false, got 1",
        f"{SOURCE}: handoff.scoring.weights.clicks: unknown key (did you mean 'click'?); expected one of "
        "click, form, hand_raiser, meeting, open, reply, webinar",
        f"{SOURCE}: handoff.scoring.weights.open: expected a number, got 'x'",
        f"{SOURCE}: handoff.scoring.half_life_days: must be greater than 0, got -2",
    ]


def test_scoring_sub_block_must_be_a_mapping(loader, write, valid):
    valid["handoff"] = {"scoring": [1]}
    problems = [str(p) for p in problems_in(loader, write, valid)]
    assert problems == [f"{SOURCE}: handoff.scoring: expected a mapping (weights, half_life_days), got list"]


def test_load_dir_skips_the_files_beside_the_campaigns_that_are_not_campaigns(loader, write, valid, campaigns_dir):
    write("c.yaml", valid)
    for name in ("scoring.yaml", "sales_team.yaml", "hygiene.yaml"):
        (campaigns_dir / name).write_text("engagement: {}\n")
    specs, problems = loader.load_dir(campaigns_dir)
    assert [s.slug for s in specs] == ["acme-onboarding"] and problems == []


def test_the_shipped_campaigns_folder_loads_with_its_handoff_block():
    specs, problems = CampaignLoader(ROOT / "templates").load_dir(ROOT / "campaigns")
    assert problems == []
    [northwind] = [s for s in specs if s.slug == "northwind-security"]
    assert northwind.handoff_rule["hand_raiser"] is True
    assert northwind.handoff_rule["scoring"] == {"half_life_days": 21}
