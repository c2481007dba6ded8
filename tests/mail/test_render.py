"""Rendering: CSS inlined once per template version, personalization after, in a sandbox."""
from __future__ import annotations

import os
import time

import pytest
from jinja2.exceptions import SecurityError

from nurture_mail.mail.compose import LeadView, SenderView
from nurture_mail.mail.render import Renderer, inline_css, link_function

LAYOUT = """<!DOCTYPE html>
<html><head><style>
.button { background-color: #1d5fd1; color: #ffffff; }
p.lead { font-size: 18px; }
@media (max-width: 620px) { .button { display: block !important; } }
</style></head>
<body>{% block content %}{% endblock %}
<p class="footer">{{ sender.address }} <a href="{{ unsubscribe_url }}">Unsubscribe</a></p></body></html>
"""
STEP = """{% extends "base.html" %}{% block content %}
<p class="lead">Hi {{ lead.first_name|default('there', true) }} at {{ lead.company }},</p>
{% if lead.fields.industry %}<p>Teams in {{ lead.fields.industry }} ask us this a lot.</p>{% endif %}
<a class="button" href="{{ link( 'guide' ) }}">Read the guide</a>
{% endblock %}"""
TEXT = """{% extends "base.txt" %}{% block content %}Hi {{ lead.first_name|default('there', true) }} at {{ lead.company }},
{{ link('guide') }}{% endblock %}"""
BASE_TXT = "{% block content %}{% endblock %}\n--\n{{ sender.address }}\nUnsubscribe: {{ unsubscribe_url }}\n"


@pytest.fixture
def templates(tmp_path):
    (tmp_path / "base.html").write_text(LAYOUT)
    (tmp_path / "base.txt").write_text(BASE_TXT)
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "step.html").write_text(STEP)
    (tmp_path / "t" / "step.txt").write_text(TEXT)
    return tmp_path


def context(**lead):
    return {
        "lead": LeadView(email="a@b.example", **lead),
        "sender": SenderView("Northwind", "n@northwind.example", "500 Market St"),
        "link": link_function({"guide": "https://northwind.example/guide?a=1&b=2"}),
        "unsubscribe_url": "https://nurture.example/u/TOKEN",
        "campaign": {"name": "C"}, "step": {"key": "s"}, "preheader": "",
    }


def test_css_is_inlined_once_and_personalization_happens_after(templates):
    renderer = Renderer(templates)
    outputs = [
        renderer.render("t/step.html", "t/step.txt", "Hi {{ lead.first_name }}", context(first_name=name, company="Acme"))
        for name in ("Zoë", "Raj", "Ana")
    ]
    assert renderer.inline_count == 1
    subjects = [o[0] for o in outputs]
    assert subjects == ["Hi Zoë", "Hi Raj", "Hi Ana"]
    html = outputs[0][1]
    assert 'class="button"' in html and "background-color:#1d5fd1" in html.replace(" ", "")
    assert "font-size:18px" in html.replace(" ", "")
    assert "@media" in html  # responsive rules stay in a <style> block
    # The tag in the attribute (with spaces, which premailer would URL-encode) survived.
    assert 'href="https://northwind.example/guide?a=1&amp;b=2"' in html
    assert "Hi Zoë at Acme" in html and "NMJTAG" not in html and "{{" not in html


def test_a_changed_template_file_is_inlined_again(templates):
    renderer = Renderer(templates)
    renderer.render("t/step.html", "t/step.txt", "s", context())
    path = templates / "t" / "step.html"
    path.write_text(STEP.replace("Read the guide", "Get the guide"))
    later = time.time() + 5
    os.utime(path, (later, later))
    _, html, _ = renderer.render("t/step.html", "t/step.txt", "s", context())
    assert renderer.inline_count == 2 and "Get the guide" in html


def test_missing_values_fall_back_and_fields_are_optional(templates):
    _, html, text = Renderer(templates).render("t/step.html", "t/step.txt", "{{ lead.title }}!", context())
    assert "Hi there at ," in html and "Teams in" not in html
    assert text.startswith("Hi there at ,")


def test_html_is_escaped_text_and_subject_are_not(templates):
    subject, html, text = Renderer(templates).render(
        "t/step.html", "t/step.txt", "For {{ lead.company }}", context(company="Hale & <b>Morrow</b>"))
    assert "Hale &amp; &lt;b&gt;Morrow&lt;/b&gt;" in html and "<b>Morrow" not in html
    assert subject == "For Hale & <b>Morrow</b>" and "Hale & <b>Morrow</b>" in text


def test_marketer_templates_cannot_reach_python_internals(templates):
    """Unsafe attributes render as nothing or raise SecurityError; they never expose internals."""
    (templates / "t" / "evil.html").write_text(
        '{% extends "base.html" %}{% block content %}[{{ lead.__class__.__mro__ }}]'
        '[{{ lead.__init__.__globals__ }}][{{ range.__self__ }}]{% endblock %}')
    (templates / "t" / "evil.txt").write_text("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    renderer = Renderer(templates)
    _, html, _ = renderer.render("t/evil.html", "t/step.txt", "x", context())
    assert "[][][]" in html and "mro" not in html and "globals" not in html
    with pytest.raises(SecurityError):
        renderer.render("t/step.html", "t/evil.txt", "x", context())
    with pytest.raises(SecurityError):
        renderer.render("t/step.html", "t/step.txt", "{{ ''.__class__.__mro__[1].__subclasses__() }}", context())


def test_inline_css_keeps_control_tags_around_elements():
    source = '<html><head><style>p{color:red}</style></head><body>{% if x %}<p>yes</p>{% endif %}</body></html>'
    out = inline_css(source)
    assert "{% if x %}" in out and "{% endif %}" in out and 'style="color:red"' in out
