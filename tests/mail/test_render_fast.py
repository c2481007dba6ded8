"""``render_template``: Jinja's own render, with each template's globals flattened once."""
from __future__ import annotations

import pytest
from jinja2 import ChainableUndefined
from jinja2.exceptions import SecurityError

from nurture_mail.mail.render import _Sandbox, render_template


@pytest.mark.parametrize("source", [
    "Hi {{ lead.first_name }}",
    "{% for i in range(3) %}{{ i }}{% endfor %} {{ lead.missing.deeper }}",
    "{% set x = 'y' %}{{ x }}{% block b %}[{{ lead.first_name | upper }}]{% endblock %}",
    "{{ cycler('a', 'b').next() }}{{ namespace(n=1).n }}",
])
def test_same_output_as_jinja_render(source):
    template = _Sandbox(autoescape=True, undefined=ChainableUndefined).from_string(source)
    context = {"lead": {"first_name": "<Zoë>"}}
    assert render_template(template, context) == template.render(context)
    assert render_template(template, context) == template.render(context)  # flattened globals reused
    assert "range" not in context  # the caller's context is not written into


def test_sandbox_still_refuses():
    for source in ("{{ ''.__class__.__mro__ }}", "{{ f.__code__.co_consts }}", "{{ lead.pop('first_name') }}"):
        template = _Sandbox().from_string(source)
        context = {"f": test_sandbox_still_refuses, "lead": {"first_name": "a"}}
        with pytest.raises(SecurityError):
            render_template(template, context)
        assert context["lead"] == {"first_name": "a"}
