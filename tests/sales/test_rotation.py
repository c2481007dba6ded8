"""Many handoffs at the same instant still rotate among the incoming reps."""
from __future__ import annotations

from support.sales import get_handoff, hand_off, rep_email


def test_handoffs_at_the_same_instant_rotate(platform, team, clock):
    emails = [f"same{n}@acme.example" for n in range(6)]
    for email in emails:
        platform.add_lead(email, region="AMER")
    assigned = [rep_email(platform, get_handoff(platform, hand_off(platform, email)).rep_id) for email in emails]
    assert assigned == ["ava@sales.example", "cy@sales.example"] * 3
