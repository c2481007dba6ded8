"""Slot plans (``mail/slots.py``): a step rendered once, each email filling in its own values,
with exactly the output of a full Jinja render, or no plan at all."""
from __future__ import annotations

import binascii
import email
import email.policy
import logging
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
from jinja2.exceptions import SecurityError

from nurture_mail.mail.compose import LeadView, SenderView
from nurture_mail.mail.mime import OutgoingEmail, build_message, canonical_text
from nurture_mail.mail.render import Renderer, link_function
from nurture_mail.mail.slots import _Layout, _qp

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "templates"
SENDER = SenderView("Northwind <Cloud>", "n@northwind.example", "500 Market St & 2nd")

LEADS = [
    dict(email="a@b.example"),
    dict(email="zoe@b.example", first_name="Zoë", last_name="O'Brien", company="Acme & Sons <EU>",
         title='"Head" of IT', fields={"industry": "Healthcare", "region": "EMEA", "seats": 40}),
    dict(email="x@b.example", first_name="<script>alert(1)</script>", company="", fields={"industry": ""}),
    dict(email="y@b.example", first_name="  Raj ", company="Initech", fields={"industry": None, "seats": 0}),
]


def context(lead: dict, delivery: int = 7) -> dict:
    return {
        "lead": LeadView(**lead),
        "sender": SENDER,
        "link": link_function({name: f"https://t.example/c/{delivery}-{name}?a=1&b=<2>" for name in
                               ("report", "summary", "guide", "demo", "calculator", "tour", "scorecard",
                                "sample-report", "setup-guide", "specialist", "responsibility", "mapping")}),
        "unsubscribe_url": f"https://t.example/u/{delivery}",
        "open_pixel_url": f"https://t.example/o/{delivery}.gif",
        "honeypot_url": f"https://t.example/c/hp{delivery}" if delivery % 2 else "",
        "campaign": {"name": "Cloud <Risk>", "slug": "cloud"}, "step": {"key": "s1", "subject": "S"},
        "preheader": "Five risks & more",
    }


KEY = ("cloud", "Cloud <Risk>", "s1", "S", "Five risks & more", SENDER)


def both(renderer: Renderer, html: str, text: str, subject: str, ctx: dict):
    return (renderer.render(html, text, subject, ctx),
            renderer.render_step(html, text, subject, ctx, KEY)[:3])


def plans(renderer: Renderer):
    return [plan for entry in renderer._cache.values() for trio in entry.plans.values() for plan in trio]


@pytest.mark.parametrize("html", sorted(p.name for p in (SHIPPED / "northwind-security").glob("*.html")))
def test_every_shipped_step_fills_exactly_what_jinja_renders(html, caplog):
    renderer = Renderer(SHIPPED)
    name = f"northwind-security/{html}"
    subject = "{{ lead.first_name|default('Hi', true) }}, a note for {{ lead.company }}"
    for delivery, lead in enumerate(LEADS * 2, start=1):
        full, filled = both(renderer, name, name.replace(".html", ".txt"), subject, context(lead, delivery))
        assert filled == full
    made = plans(renderer)
    assert len(made) == 3 and all(plan is not None and not plan.broken for plan in made)
    assert "disagrees" not in caplog.text


@pytest.fixture
def write(tmp_path):
    (tmp_path / "base.html").write_text("<html><body>{% block content %}{% endblock %}</body></html>")
    (tmp_path / "base.txt").write_text("{% block content %}{% endblock %}\n-- {{ sender.name }}\n")

    def write(html_body: str, text_body: str = "Hi {{ lead.first_name }}") -> Renderer:
        (tmp_path / "s.html").write_text('{% extends "base.html" %}{% block content %}' + html_body + "{% endblock %}")
        (tmp_path / "s.txt").write_text('{% extends "base.txt" %}{% block content %}' + text_body + "{% endblock %}")
        return Renderer(tmp_path)

    return write


@pytest.mark.parametrize("body", [
    "{% if not lead.company %}<p>there</p>{% elif lead.fields.industry %}{{ lead.fields.industry|lower }}"
    "{% else %}{{ lead.company|upper }}{% endif %}",
    "{{ lead.fields['region'] }} {{ lead.fields.seats|default(1) }} {{ lead.title|replace('\"', '*') }}",
    "{{ lead.first_name|truncate(5, true, '…') }} {{ lead.name|title }} {{ lead.missing.deeper }}",
    "{% for n in [1, 2] %}{{ n }}:{{ link('guide') }} {% endfor %}{{ campaign.name }} {{ preheader }}",
    "{{ lead.first_name|e }}{{ lead.company|default('you', true)|trim|length }}",
])
def test_plannable_constructs_fill_exactly(write, body):
    renderer = write(body, text_body=body)
    for lead in LEADS:
        full, filled = both(renderer, "s.html", "s.txt", "{{ lead.company }}", context(lead))
        assert filled == full
    assert all(plan is not None and not plan.broken for plan in plans(renderer))


@pytest.mark.parametrize("body", [
    "{% for key in lead.fields %}{{ key }}{% endfor %}",
    "{% if lead.first_name == 'Zoë' %}hey{% endif %}",
    "{{ lead.first_name or 'there' }}",
    "{% filter upper %}{{ lead.first_name }}{% endfilter %}",
    "{% set n = lead.first_name %}{{ n }}",
    "{% macro m() %}{{ lead.first_name }}{% endmacro %}{{ m()|upper }}",
    "{% for lead in ['shadow'] %}{{ lead }}{% endfor %}",
    "{{ lead.first_name|random }}",
    "{{ lead.fields[lead.first_name] }}",
])
def test_other_uses_of_per_email_values_leave_the_step_to_jinja(write, body):
    renderer = write(body, text_body=body)
    for lead in LEADS:
        full, filled = both(renderer, "s.html", "s.txt", "x", context(lead))
        if "random" not in body:
            assert filled == full
    html_plan, text_plan = plans(renderer)[1:]
    assert html_plan is None and text_plan is None


def test_each_shape_is_laid_out_once_and_checked_once(write):
    renderer = write("{% if lead.company %}{{ lead.company }}{% else %}you{% endif %}")
    for lead in LEADS * 3:
        full, filled = both(renderer, "s.html", "s.txt", "x", context(lead))
        assert filled == full
    html_plan = plans(renderer)[1]
    assert set(html_plan.layouts) == {(True,), (False,)} == html_plan.checked


def test_a_plan_that_disagrees_with_jinja_is_dropped(write, caplog):
    renderer = write("Hi {{ lead.first_name }}")
    renderer.render_step("s.html", "s.txt", "x", context(LEADS[1]), KEY)
    html_plan = plans(renderer)[1]
    layout = html_plan.layouts[()]
    html_plan.layouts[()] = _Layout(tuple(p.replace("Hi", "Yo") for p in layout.pieces), layout.slots)  # wrong
    html_plan.checked.clear()
    with caplog.at_level(logging.WARNING):
        full, filled = both(renderer, "s.html", "s.txt", "x", context(LEADS[3]))
    assert filled == full and html_plan.broken and "disagrees" in caplog.text
    assert both(renderer, "s.html", "s.txt", "x", context(LEADS[1]))[1] == both(
        renderer, "s.html", "s.txt", "x", context(LEADS[1]))[0]


def test_the_sandbox_still_refuses_through_a_plan(write):
    renderer = write("{{ lead.fields.pop('industry') }}")
    ctx = context(LEADS[1])
    with pytest.raises(SecurityError):
        renderer.render_step("s.html", "s.txt", "x", ctx, KEY)
    assert ctx["lead"].fields["industry"] == "Healthcare"


def test_a_changed_template_gets_new_plans(write, tmp_path):
    renderer = write("Old {{ lead.first_name }}")
    assert "Old Zoë" in renderer.render_step("s.html", "s.txt", "x", context(LEADS[1]), KEY)[1]
    import os
    import time
    (tmp_path / "s.html").write_text('{% extends "base.html" %}{% block content %}New {{ lead.company }}{% endblock %}')
    later = time.time() + 5
    os.utime(tmp_path / "s.html", (later, later))
    renderer._cache[("s.html", "s.txt")].checked_at = 0
    assert "New Acme &amp; Sons &lt;EU&gt;" in renderer.render_step("s.html", "s.txt", "x", context(LEADS[1]), KEY)[1]


@pytest.mark.parametrize("html", sorted(p.name for p in (SHIPPED / "northwind-security").glob("*.html"))[:5])
def test_filled_bodies_come_quoted_printable_and_parse_back_to_the_full_render(html):
    renderer = Renderer(SHIPPED)
    name = f"northwind-security/{html}"
    for delivery, lead in enumerate(LEADS, start=1):
        ctx = context(lead, delivery)
        subject, full_html, full_text = renderer.render(name, name.replace(".html", ".txt"), "S", ctx)
        step = renderer.render_step(name, name.replace(".html", ".txt"), "S", ctx, KEY)
        assert step.html_qp is not None and step.text_qp is not None
        message = build_message(OutgoingEmail(
            from_addr="n@northwind.example", from_name="N", to_addr=lead["email"], to_name="", subject=subject,
            html=step.html, text=step.text, message_id=f"<d{delivery}.x@northwind.example>",
            date=datetime(2026, 12, 3, tzinfo=UTC), text_qp=step.text_qp, html_qp=step.html_qp))
        assert all(len(line) <= 998 and not line.startswith(b".") for line in message.split(b"\r\n"))
        parsed = email.message_from_bytes(message, policy=email.policy.default)
        assert not parsed.defects
        text_part, html_part = parsed.iter_parts()
        assert html_part["Content-Transfer-Encoding"] == "quoted-printable"
        assert html_part.get_payload(decode=True).decode() == canonical_text(full_html)
        assert text_part.get_payload(decode=True).decode() == canonical_text(full_text)
        assert not [part.defects for part in (text_part, html_part) if part.defects]


def test_quoted_printable_pieces_join_into_a_valid_body():
    """Pieces encoded apart (each ending in a soft or hard break) decode to their concatenation,
    lines stay within 76 characters, no line ends in white space and none starts with a dot
    (nothing for SMTP to double)."""
    rng = random.Random(7)
    alphabet = ["a", " ", "\t", "=", "é", "\n", ".", "x" * 30, "€", "  \n", "x" * 74, "b" * 75, "\U0001f600",
                "." * 80, "y" * 73 + ".", "\n."]
    for _ in range(20000):
        parts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))) for _ in range(rng.randint(1, 5))]
        body = b"".join(_qp(part) for part in parts if part)
        assert binascii.a2b_qp(body) == canonical_text("".join(parts)).encode("utf-8")
        for line in body.split(b"\r\n"):
            assert len(line) <= 76 and b"\n" not in line and b"\r" not in line
            assert not line.endswith((b" ", b"\t")) and not line.startswith(b".")


def test_a_value_only_a_branch_not_taken_would_fail_on_is_left_to_jinja(write):
    """The plan evaluates every test of a shape at once; one that fails (here a ``format`` with
    too few arguments, nested under a condition that is false) gives the full render, which
    never evaluates it, instead of an error."""
    renderer = write("{% if lead.company %}{% if lead.first_name|format(1, 2) %}x{% endif %}{% endif %}"
                     "Hi {{ lead.first_name }}")
    ctx = context(dict(email="a@b.example", first_name="%s %s %s", company=""))
    full, filled = both(renderer, "s.html", "s.txt", "x", ctx)
    assert filled == full and "Hi %s %s %s" in filled[1]
