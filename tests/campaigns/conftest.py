"""A small templates folder and a campaigns folder in tmp_path, and a loader reading them."""
from __future__ import annotations

import copy
import textwrap
from pathlib import Path

import pytest
import yaml

from nurture_mail.campaigns import CampaignLoader

TEMPLATES = {
    "welcome": ("<p>Hi</p>\n<a href=\"{{ link('report') }}\">Read the report</a>\n",
                "Hi\nRead the report: {{ link('report') }}\n"),
    "basics": ("<p>The basics, {{ lead.first_name }}.</p>\n", "The basics, {{ lead.first_name }}.\n"),
    "pricing": ("<a href=\"{{ link('pricing') }}\">Pricing</a> <a href=\"{{link(\"demo\")}}\">Demo</a>\n",
                "Pricing: {{ link('pricing') }}\nDemo: {{ link( 'demo' ) }}\n"),
    "pricing-alt": ("<a href=\"{{ link('calculator') }}\">Calculator</a>\n", "{{ link('calculator') }}\n"),
    "plain": ("<p>Checking in.</p>\n", "Checking in.\n"),
    "nested/deep": ("<p>deep</p>\n", "deep\n"),
}

VALID_YAML = """\
# A small but complete campaign.
slug: acme-onboarding
name: "Acme onboarding"
description: Three topics, four steps, one alternate.
cadence: 2d12h
send_window: {start: "09:00", end: "17:00", weekdays_only: true}
max_touches: 6
topics:
  - {slug: risk, name: Risk, stage: awareness}
  - {slug: basics, name: Basics, stage: consideration}
  - {slug: pricing, name: Pricing, stage: decision, description: What it costs}
steps:
  - key: welcome
    subject: "Hi {{ lead.first_name|default('there', true) }}"
    template: welcome
    teaches: [risk]
    links:
      - {name: report, url: "https://acme.example/report", label: Read the report, topic: risk}
  - key: basics
    subject: The basics
    preheader: All you need in five minutes
    template: basics
    teaches: [basics, risk]
  - key: pricing
    subject: Pricing
    template: pricing
    teaches: pricing
    requires: [basics]
    links:
      - {name: pricing, url: "https://acme.example/pricing?plan=pro#table", topic: pricing}
      - {name: demo, url: "http://acme.example/demo", label: Book a demo, hand_raiser: true}
    alternate:
      key: pricing-calculator
      subject: Work out your price in a minute
      template: pricing-alt
      links:
        - {name: calculator, url: "https://acme.example/calculator", topic: pricing}
  - key: check-in
    subject: Checking in
    template: plain
exit: {when: [replied, unsubscribed]}
handoff: {engagement_at_least: 30, fit_at_least: 50}
"""


@pytest.fixture
def valid_yaml() -> str:
    return VALID_YAML


@pytest.fixture
def valid() -> dict:
    """The valid campaign as plain data (a fresh copy per test), to break one piece at a time."""
    return copy.deepcopy(yaml.safe_load(VALID_YAML))


@pytest.fixture
def templates_dir(tmp_path: Path) -> Path:
    root = tmp_path / "templates"
    for name, (html, text) in TEMPLATES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / f"{name}.html").write_text(html, encoding="utf-8")
        (root / f"{name}.txt").write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def campaigns_dir(tmp_path: Path) -> Path:
    root = tmp_path / "campaigns"
    root.mkdir()
    return root


@pytest.fixture
def loader(templates_dir: Path) -> CampaignLoader:
    return CampaignLoader(templates_dir)


@pytest.fixture
def write(campaigns_dir: Path):
    """Write a campaign file: a YAML string (dedented) or data dumped as YAML."""

    def _write(name: str, content) -> Path:
        path = campaigns_dir / name
        text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return _write


@pytest.fixture
def template(templates_dir: Path):
    """Add or overwrite a template file: template("x.html", "...")."""

    def _template(name: str, text: str) -> Path:
        path = templates_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return _template
