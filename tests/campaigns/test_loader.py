"""Loading ``campaigns/*.yaml``: a valid file becomes a CampaignSpec; every error is reported, all at once,
with its file and place (DESIGN §3 Campaign/Step, §4 prerequisites checked at load)."""
from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from nurture_mail.campaigns import CampaignLoader, CampaignSpec, LinkSpec, StepSpec, TopicSpec, parse_duration
from nurture_mail.campaigns.loader import check_across_files
from nurture_mail.exceptions import CampaignDefinitionError, Problem

SOURCE = "campaigns/c.yaml"


def problems_of(loader: CampaignLoader, path) -> list[Problem]:
    with pytest.raises(CampaignDefinitionError) as info:
        loader.load_file(path)
    problems = info.value.problems
    assert problems, "raised without problems"
    assert str(info.value) == "\n".join(str(p) for p in problems)
    return problems


def problems_in(loader, write, data) -> list[Problem]:
    return problems_of(loader, write("c.yaml", data))


def has(problems, path, *fragments) -> Problem:
    """The one problem at ``path`` whose message holds every fragment."""
    found = [p for p in problems if p.path == path and all(f in p.message for f in fragments)]
    assert found, f"no problem at {path!r} with {fragments}; got:\n" + "\n".join(map(str, problems))
    return found[0]


def no_problem_mentions(problems, fragment):
    assert not [p for p in problems if fragment in p.message], "\n".join(map(str, problems))


# -- a valid campaign --------------------------------------------------------------------------


def test_valid_campaign_loads(loader, write, valid_yaml):
    spec = loader.load_file(write("acme.yaml", valid_yaml))
    assert isinstance(spec, CampaignSpec)
    assert (spec.slug, spec.name, spec.source) == ("acme-onboarding", "Acme onboarding", "campaigns/acme.yaml")
    assert spec.description == "Three topics, four steps, one alternate."
    assert spec.cadence_seconds == 2 * 86400 + 12 * 3600
    assert (spec.window_start, spec.window_end, spec.weekdays_only) == (time(9), time(17), True)
    assert spec.max_touches == 6
    assert spec.topics == (
        TopicSpec("risk", "Risk", "awareness"),
        TopicSpec("basics", "Basics", "consideration"),
        TopicSpec("pricing", "Pricing", "decision", "What it costs"),
    )
    assert [s.key for s in spec.steps] == ["welcome", "basics", "pricing", "pricing-calculator", "check-in"]
    welcome, basics, pricing, calculator, check_in = spec.steps
    assert welcome == StepSpec(
        key="welcome", subject="Hi {{ lead.first_name|default('there', true) }}", template="welcome",
        stage="awareness", teaches=("risk",),
        links=(LinkSpec("report", "https://acme.example/report", "Read the report", "risk", False),),
    )
    assert welcome.html_template == "welcome.html" and welcome.text_template == "welcome.txt"
    assert basics.preheader == "All you need in five minutes"
    assert basics.teaches == ("basics", "risk") and basics.requires == ()
    assert pricing.requires == ("basics",)
    assert pricing.teaches == ("pricing",)  # a single topic may be written without a list
    assert pricing.links == (
        LinkSpec("pricing", "https://acme.example/pricing?plan=pro#table", None, "pricing", False),
        LinkSpec("demo", "http://acme.example/demo", "Book a demo", None, True),
    )
    assert spec.exit_rules == {"when": ["replied", "unsubscribed"]}
    assert spec.handoff_rule == {"engagement_at_least": 30, "fit_at_least": 50}


def test_stage_is_inferred_from_the_latest_stage_taught(loader, write, valid_yaml):
    spec = loader.load_file(write("acme.yaml", valid_yaml))
    stages = {s.key: s.stage for s in spec.steps}
    assert stages["welcome"] == "awareness"
    assert stages["basics"] == "consideration"   # teaches basics (consideration) and risk (awareness)
    assert stages["pricing"] == "decision"
    assert stages["check-in"] == "awareness"     # teaches nothing: the first stage


def test_explicit_stage_wins_over_the_inferred_one(loader, write, valid):
    valid["steps"][0]["stage"] = "decision"
    spec = loader.load_file(write("c.yaml", valid))
    assert spec.steps[0].stage == "decision"


def test_alternate_becomes_a_step_right_after_its_primary(loader, write, valid_yaml):
    spec = loader.load_file(write("acme.yaml", valid_yaml))
    pricing, calculator = spec.steps[2], spec.steps[3]
    assert pricing.alternate == "pricing-calculator" and pricing.alternate_of is None
    assert calculator.alternate_of == "pricing" and calculator.alternate is None
    assert calculator.subject == "Work out your price in a minute"
    assert calculator.template == "pricing-alt"
    # Same topics, prerequisites and stage as the primary; its own links.
    assert (calculator.teaches, calculator.requires, calculator.stage) == (("pricing",), ("basics",), "decision")
    assert calculator.links == (LinkSpec("calculator", "https://acme.example/calculator", None, "pricing"),)


def test_alternate_without_links_inherits_the_primarys_links(loader, write, valid):
    valid["steps"][2]["alternate"] = {"key": "pricing-again", "subject": "Pricing, again", "template": "pricing"}
    spec = loader.load_file(write("c.yaml", valid))
    assert spec.steps[3].key == "pricing-again"
    assert spec.steps[3].links == spec.steps[2].links


def test_defaults_when_optional_settings_are_left_out(loader, write, valid):
    for key in ("cadence", "send_window", "max_touches", "description", "exit", "handoff"):
        valid.pop(key)
    spec = loader.load_file(write("c.yaml", valid))
    assert spec.cadence_seconds == 3 * 86400
    assert (spec.window_start, spec.window_end, spec.weekdays_only) == (time(9), time(17), True)
    assert spec.max_touches == 12
    assert spec.description is None and spec.exit_rules == {} and spec.handoff_rule == {}


@pytest.mark.parametrize("text, seconds", [
    ("3d", 3 * 86400), ("36h", 36 * 3600), ("2d12h", 2 * 86400 + 12 * 3600), ("90m", 90 * 60),
    ("1d 2h 3m", 86400 + 7200 + 180), (" 45m ", 2700), (3600, 3600),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "3", "3w", "three days", "1.5d", "-3d", "d", "3m2h", "0d", "0m", 0, -60, True, None, 2.5])
def test_parse_duration_rejects(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize("cadence, seconds", [("3d", 259200), ("36h", 129600), ("2d12h", 216000), ("90m", 5400)])
def test_cadence_durations_in_yaml(loader, write, valid_yaml, cadence, seconds):
    spec = loader.load_file(write("c.yaml", valid_yaml.replace("cadence: 2d12h", f"cadence: {cadence}")))
    assert spec.cadence_seconds == seconds


@pytest.mark.parametrize("window, start, end", [
    ('{start: "09:00", end: "17:00"}', time(9), time(17)),
    ("{start: 9:00, end: 17:30}", time(9), time(17, 30)),     # YAML 1.1 sexagesimal ints: 540 and 1050
    ("{start: 09:00, end: 17:00}", time(9), time(17)),        # 09:00 stays a string, 17:00 is 1020
    ("{start: 8:05, end: 23:59}", time(8, 5), time(23, 59)),
    ("{start: '7:30'}", time(7, 30), time(17)),
])
def test_send_window_times_quoted_and_unquoted(loader, write, valid_yaml, window, start, end):
    text = valid_yaml.replace('send_window: {start: "09:00", end: "17:00", weekdays_only: true}',
                              f"send_window: {window}")
    spec = loader.load_file(write("c.yaml", text))
    assert (spec.window_start, spec.window_end, spec.weekdays_only) == (start, end, True)


def test_send_window_weekdays_only_false(loader, write, valid):
    valid["send_window"] = {"weekdays_only": False}
    spec = loader.load_file(write("c.yaml", valid))
    assert spec.weekdays_only is False


def test_template_in_a_subfolder_and_yml_suffix(loader, write, valid):
    valid["steps"][3]["template"] = "nested/deep"
    spec = loader.load_file(write("c.yml", valid))
    assert spec.steps[-1].template == "nested/deep"
    assert spec.source == "campaigns/c.yml"


def test_source_is_relative_to_the_root_when_given(templates_dir, write, valid, tmp_path):
    spec = CampaignLoader(templates_dir, root=tmp_path).load_file(write("c.yaml", valid))
    assert spec.source == "campaigns/c.yaml"


def test_load_data_validates_without_a_file(loader, valid):
    spec = loader.load_data(valid, "web-ui")
    assert spec.source == "web-ui" and spec.slug == "acme-onboarding"
    with pytest.raises(CampaignDefinitionError) as info:
        loader.load_data({**valid, "slug": None}, "web-ui")
    assert [str(p) for p in info.value.problems] == ["web-ui: slug: required"]


def test_definition_hash_ignores_where_the_campaign_came_from(loader, valid):
    a = loader.load_data(valid, "campaigns/a.yaml")
    b = loader.load_data(valid, "campaigns/b.yaml")
    assert a.definition_hash() == b.definition_hash()
    valid["steps"][0]["subject"] = "Changed"
    assert loader.load_data(valid, "campaigns/a.yaml").definition_hash() != a.definition_hash()


def test_the_shipped_campaigns_load():
    """The real campaigns/ and templates/ folders of the project are valid."""
    root = Path(__file__).resolve().parents[2]
    specs, problems = CampaignLoader(root / "templates", root=root).load_dir(root / "campaigns")
    assert problems == []
    assert specs


# -- file-level errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("text, where, fragment", [
    ("slug: x\nsteps: [a, b\nname: y\n", "line 3, column 5", "expected ',' or ']'"),
    ("slug: x\n\tname: y\n", "line 2, column 1", "cannot start any token"),
    ("slug: x\n  name: y\n", "line 2, column 7", "mapping values are not allowed here"),
])
def test_invalid_yaml_reports_line_and_column(loader, write, text, where, fragment):
    problems = problems_of(loader, write("c.yaml", text))
    assert len(problems) == 1
    assert problems[0].source == SOURCE
    assert problems[0].path == where
    assert problems[0].message.startswith("invalid YAML: ") and fragment in problems[0].message
    assert str(problems[0]).startswith(f"{SOURCE}: {where}: invalid YAML")


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n", "", "# only a comment\n"])
def test_a_file_that_is_not_a_mapping(loader, write, text):
    problems = problems_of(loader, write("c.yaml", text))
    assert [str(p) for p in problems] == [f"{SOURCE}: expected a mapping with slug, name, topics and steps"]


def test_unreadable_file(loader, campaigns_dir):
    path = campaigns_dir / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    problems = problems_of(loader, path)
    assert problems[0].source == "campaigns/latin1.yaml"
    assert "cannot read file" in problems[0].message


# -- unknown keys, with did-you-mean -------------------------------------------------------------


def test_unknown_keys_everywhere_with_suggestions(loader, write, valid):
    valid["stpes"] = valid.pop("steps")
    problems = problems_in(loader, write, valid)
    has(problems, "stpes", "unknown key (did you mean 'steps'?)")
    has(problems, "steps", "expected a non-empty list of steps")

    valid["steps"] = valid.pop("stpes")
    valid["cadance"] = "3d"
    valid["topics"][0]["stgae"] = "awareness"
    valid["steps"][0]["teach"] = ["risk"]
    valid["steps"][0]["links"][0]["topc"] = "risk"
    valid["send_window"]["weekday_only"] = True
    valid["steps"][2]["alternate"]["subjet"] = "x"
    valid["steps"][1]["colour"] = "blue"
    problems = problems_in(loader, write, valid)
    has(problems, "cadance", "unknown key (did you mean 'cadence'?)")
    has(problems, "topics[0].stgae", "unknown key (did you mean 'stage'?)")
    has(problems, "steps[0].teach", "unknown key (did you mean 'teaches'?)")
    has(problems, "steps[0].links[0].topc", "unknown key (did you mean 'topic'?)")
    has(problems, "send_window.weekday_only", "unknown key (did you mean 'weekdays_only'?)")
    has(problems, "steps[2].alternate.subjet", "unknown key (did you mean 'subject'?)")
    assert has(problems, "steps[1].colour", "unknown key").message == "unknown key"
    assert len(problems) == 7


# -- required fields and slugs -----------------------------------------------------------------


def test_missing_required_fields(loader, write, valid):
    del valid["slug"], valid["name"]
    del valid["topics"][1]["name"]
    del valid["steps"][0]["key"]
    del valid["steps"][1]["subject"]
    valid["steps"][3]["template"] = "   "
    del valid["steps"][2]["alternate"]["key"]
    del valid["steps"][0]["links"][0]["name"]
    problems = problems_in(loader, write, valid)
    for path in ("slug", "name", "topics[1].name", "steps[0].key", "steps[1].subject", "steps[3].template",
                 "steps[2].alternate.key", "steps[0].links[0].name"):
        assert has(problems, path, "required").message == "required"
    assert str(has(problems, "slug", "required")) == f"{SOURCE}: slug: required"


@pytest.mark.parametrize("key, value", [("topics", None), ("topics", []), ("topics", "risk"),
                                        ("steps", None), ("steps", []), ("steps", {"key": "a"})])
def test_topics_and_steps_must_be_non_empty_lists(loader, write, valid, key, value):
    valid[key] = value
    problems = problems_in(loader, write, valid)
    has(problems, key, "expected a non-empty list")


@pytest.mark.parametrize("slug", ["Acme", "acme onboarding", "-acme", "acme_onboarding", "a" * 81, "", 42, "émail"])
def test_bad_campaign_slug(loader, write, valid, slug):
    valid["slug"] = slug
    problems = problems_in(loader, write, valid)
    if slug == "":
        has(problems, "slug", "expected lowercase letters, digits and dashes, got ''")
    else:
        has(problems, "slug", "expected lowercase letters, digits and dashes", repr(slug))


def test_bad_slugs_of_topics_steps_and_links(loader, write, valid):
    valid["topics"].append({"slug": "Legal Review", "name": "Legal", "stage": "decision"})
    valid["steps"][3]["key"] = "Check_In"
    valid["steps"][0]["links"][0]["name"] = "The Report"
    problems = problems_in(loader, write, valid)
    has(problems, "topics[3].slug", "expected lowercase letters, digits and dashes, got 'Legal Review'")
    has(problems, "steps[3].key", "got 'Check_In'")
    has(problems, "steps[0].links[0].name", "got 'The Report'")


def test_wrong_types_for_text_fields(loader, write, valid):
    valid["name"] = ["a", "list"]
    valid["description"] = 7
    valid["steps"][0]["preheader"] = {"a": 1}
    valid["steps"][1]["subject"] = 12
    problems = problems_in(loader, write, valid)
    has(problems, "name", "expected text")
    has(problems, "description", "expected text")
    has(problems, "steps[0].preheader", "expected text")
    has(problems, "steps[1].subject", "expected text, got 12")


# -- topics ------------------------------------------------------------------------------------


def test_duplicate_topic(loader, write, valid):
    valid["topics"].append({"slug": "pricing", "name": "Pricing again", "stage": "decision"})
    problems = problems_in(loader, write, valid)
    assert [str(p) for p in problems] == [f"{SOURCE}: topics[3].slug: duplicate topic 'pricing'"]


@pytest.mark.parametrize("stage", ["purchase", "Decision", None, 3])
def test_bad_topic_stage(loader, write, valid, stage):
    valid["topics"].append({"slug": "legal", "name": "Legal", "stage": stage})
    problems = problems_in(loader, write, valid)
    has(problems, "topics[3].stage", "expected one of awareness, consideration, decision", repr(stage))


def test_bad_step_stage(loader, write, valid):
    valid["steps"][1]["stage"] = "later"
    problems = problems_in(loader, write, valid)
    assert [str(p) for p in problems] == [
        f"{SOURCE}: steps[1].stage: expected one of awareness, consideration, decision, got 'later'"
    ]


def test_topic_that_is_not_a_mapping(loader, write, valid):
    valid["topics"].append("legal")
    problems = problems_in(loader, write, valid)
    has(problems, "topics[3]", "expected a mapping")


# -- unknown topics ----------------------------------------------------------------------------


def test_unknown_topic_in_teaches_with_suggestion(loader, write, valid):
    valid["steps"][2]["teaches"] = ["pricng"]
    problems = problems_in(loader, write, valid)
    assert [str(p) for p in problems] == [f"{SOURCE}: steps[2].teaches: unknown topic 'pricng' (did you mean 'pricing'?)"]


def test_unknown_topics_in_requires_and_link_topic(loader, write, valid):
    valid["steps"][1]["requires"] = ["rsk"]
    valid["steps"][0]["links"][0]["topic"] = "riks"
    valid["steps"][3]["teaches"] = ["zebra-crossing"]
    problems = problems_in(loader, write, valid)
    assert has(problems, "steps[1].requires", "unknown topic 'rsk'").message.endswith("(did you mean 'risk'?)")
    assert has(problems, "steps[0].links[0].topic", "unknown topic 'riks'").message.endswith("(did you mean 'risk'?)")
    # Nothing close: no suggestion.
    assert has(problems, "steps[3].teaches", "unknown topic").message == "unknown topic 'zebra-crossing'"


def test_a_step_cannot_require_what_it_teaches(loader, write, valid):
    valid["steps"][1]["requires"] = ["risk", "basics"]
    problems = problems_in(loader, write, valid)
    has(problems, "steps[1].requires", "'basics' is both taught and required by the same step")


@pytest.mark.parametrize("value", [{"a": 1}, 5])
def test_teaches_must_be_a_list(loader, write, valid, value):
    valid["steps"][0]["teaches"] = value
    problems = problems_in(loader, write, valid)
    has(problems, "steps[0].teaches", "expected a list of topic slugs")


@pytest.mark.parametrize("where", ["teaches", "link topic"])
def test_unhashable_topic_is_reported_not_a_crash(loader, write, valid, where):
    if where == "teaches":
        valid["steps"][2]["teaches"] = [{"pricing": "x"}]
        path = "steps[2].teaches"
    else:
        valid["steps"][0]["links"][0]["topic"] = ["risk"]
        path = "steps[0].links[0].topic"
    problems = problems_in(loader, write, valid)  # actual: TypeError: unhashable type
    assert [p for p in problems if p.path == path]


# -- step keys ---------------------------------------------------------------------------------


def test_duplicate_step_key(loader, write, valid):
    valid["steps"][3]["key"] = "basics"
    problems = problems_in(loader, write, valid)
    assert [str(p) for p in problems] == [f"{SOURCE}: steps[3].key: duplicate step key 'basics'"]


def test_alternate_key_clashing_with_a_later_step(loader, write, valid):
    valid["steps"][2]["alternate"]["key"] = "check-in"
    problems = problems_in(loader, write, valid)
    assert [str(p) for p in problems] == [f"{SOURCE}: steps[3].key: duplicate step key 'check-in'"]


def test_alternate_key_clashing_with_an_earlier_step(loader, write, valid):
    valid["steps"][2]["alternate"]["key"] = "welcome"
    problems = problems_in(loader, write, valid)
    assert [str(p) for p in problems] == [f"{SOURCE}: steps[2].alternate.key: duplicate step key 'welcome'"]


def test_alternate_key_equal_to_its_own_primary(loader, write, valid):
    valid["steps"][2]["alternate"]["key"] = "pricing"
    problems = problems_in(loader, write, valid)
    has(problems, "steps[2].alternate.key", "duplicate step key 'pricing'")


def test_alternate_must_be_a_mapping(loader, write, valid):
    valid["steps"][2]["alternate"] = "pricing-calculator"
    problems = problems_in(loader, write, valid)
    has(problems, "steps[2].alternate", "expected a mapping")


def test_step_that_is_not_a_mapping(loader, write, valid):
    valid["steps"].append("one more")
    problems = problems_in(loader, write, valid)
    assert [str(p) for p in problems] == [f"{SOURCE}: steps[4]: expected a mapping with key, subject, template and teaches"]


# -- templates ---------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", [".html", ".txt"])
def test_missing_template_file(loader, write, valid, templates_dir, missing):
    (templates_dir / f"plain{missing}").unlink()
    problems = problems_in(loader, write, valid)
    assert [str(p) for p in problems] == [
        f"{SOURCE}: steps[3].template: template file not found: templates/plain{missing}"
    ]


def test_missing_both_template_files_reports_both(loader, write, valid):
    valid["steps"][3]["template"] = "no-such-template"
    problems = problems_in(loader, write, valid)
    assert [p.message for p in problems] == [
        "template file not found: templates/no-such-template.html",
        "template file not found: templates/no-such-template.txt",
    ]
    assert {p.path for p in problems} == {"steps[3].template"}


def test_missing_alternate_template(loader, write, valid):
    valid["steps"][2]["alternate"]["template"] = "nope"
    problems = problems_in(loader, write, valid)
    has(problems, "steps[2].alternate.template", "templates/nope.html")
    has(problems, "steps[2].alternate.template", "templates/nope.txt")


@pytest.mark.parametrize("name", ["../secrets", "/etc/passwd", "nested/../../x"])
def test_template_outside_the_templates_folder(loader, write, valid, name):
    valid["steps"][3]["template"] = name
    problems = problems_in(loader, write, valid)
    has(problems, "steps[3].template", "template name must be relative to templates/")


def test_template_syntax_error_with_line(loader, write, valid, template):
    template("plain.html", "<p>one</p>\n<p>two</p>\n{% if lead.first_name %}\n<p>four</p>\n")
    template("plain.txt", "ok {{ lead.first_name }\n")
    problems = problems_in(loader, write, valid)
    has(problems, "steps[3].template", "templates/plain.html line 3:", "endif")  # the unclosed if
    has(problems, "steps[3].template", "templates/plain.txt line 1:")
    assert len(problems) == 2


def test_template_syntax_error_on_the_exact_line(loader, write, valid, template):
    template("plain.html", "<p>one</p>\n<p>two</p>\n<p>{{ lead.first_name | }}</p>\n<p>four</p>\n")
    problems = problems_in(loader, write, valid)
    assert [p.message.split(":")[0] for p in problems] == ["templates/plain.html line 3"]


def test_subject_syntax_error(loader, write, valid):
    valid["steps"][1]["subject"] = "Hi {{ lead.first_name"
    problems = problems_in(loader, write, valid)
    has(problems, "steps[1].subject", "template syntax error")


@pytest.mark.parametrize(("where", "value"), [
    (("steps", 1, "subject"), "The basics\r\nBcc: x@evil.example"),
    (("steps", 1, "subject"), "The basics\x07"),
    (("steps", 1, "preheader"), "All you need\nin five minutes"),
    (("name",), "Acme\tonboarding"),
    (("topics", 0, "name"), "Risk\x00"),
])
def test_control_characters_in_names_and_subjects_are_refused(loader, write, valid, where, value):
    target = valid
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    problems = problems_in(loader, write, valid)
    path = ".".join(str(k) for k in where).replace(".1.", "[1].").replace(".0.", "[0].")
    has(problems, path, "contains a control character")


def test_link_used_in_a_template_but_not_declared_on_the_step(loader, write, valid, template):
    template("welcome.txt", "Read: {{ link('reprot') }}\n")
    problems = problems_in(loader, write, valid)
    assert [str(p) for p in problems] == [
        f"{SOURCE}: steps[0].template: templates/welcome.txt uses link('reprot'), which the step does not declare"
        " (did you mean 'report'?)"
    ]


def test_links_of_a_step_are_checked_in_both_templates(loader, write, valid):
    del valid["steps"][2]["links"][1]  # 'demo' is used by pricing.html and pricing.txt
    problems = problems_in(loader, write, valid)
    assert [p.message for p in problems] == [
        "templates/pricing.html uses link('demo'), which the step does not declare",
        "templates/pricing.txt uses link('demo'), which the step does not declare",
    ]


def test_alternate_templates_are_checked_against_the_alternates_links(loader, write, valid):
    valid["steps"][2]["alternate"]["links"] = [{"name": "calculater", "url": "https://acme.example/c"}]
    problems = problems_in(loader, write, valid)
    has(problems, "steps[2].alternate.template", "pricing-alt.html uses link('calculator')", "(did you mean 'calculater'?)")
    has(problems, "steps[2].alternate.template", "pricing-alt.txt uses link('calculator')")
    assert len(problems) == 2


def test_a_step_without_links_using_link_in_its_template(loader, write, valid):
    valid["steps"][3]["template"] = "welcome"
    problems = problems_in(loader, write, valid)
    assert {p.path for p in problems} == {"steps[3].template"}
    assert len(problems) == 2


# -- links -------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["javascript:alert(1)", "/pricing", "pricing.html", "www.acme.example/x",
                                 "ftp://acme.example/x", "https://", "https://acme .example", "mailto:a@b.example",
                                 None, 42])
def test_bad_link_url(loader, write, valid, url):
    valid["steps"][3]["links"] = [{"name": "extra", "url": url}]
    problems = problems_in(loader, write, valid)
    assert [str(p) for p in problems] == [
        f"{SOURCE}: steps[3].links[0].url: expected an absolute http(s) URL, got {url!r}"
    ]


def test_bad_link_url_is_the_only_error_reported(loader, write, valid):
    valid["steps"][0]["links"][0]["url"] = "javascript:alert(1)"
    problems = problems_in(loader, write, valid)
    assert [p.path for p in problems] == ["steps[0].links[0].url"]


def test_link_errors(loader, write, valid):
    valid["steps"][3]["links"] = [
        {"name": "a", "url": "https://acme.example/a", "hand_raiser": "yes please"},
        {"name": "a", "url": "https://acme.example/b"},
        "https://acme.example/c",
    ]
    valid["steps"][1]["links"] = {"name": "x"}
    problems = problems_in(loader, write, valid)
    has(problems, "steps[3].links[0].hand_raiser", "expected true or false")
    has(problems, "steps[3].links[1].name", "duplicate link name 'a'")
    has(problems, "steps[3].links[2]", "expected a mapping with name and url")
    has(problems, "steps[1].links", "expected a list of links")
    assert len(problems) == 4


# -- cadence, max touches, send window ---------------------------------------------------------


@pytest.mark.parametrize("cadence", ["3 weeks", "0d", "0m", -1, 0, "soon", True, [3]])
def test_bad_cadence(loader, write, valid, cadence):
    valid["cadence"] = cadence
    problems = problems_in(loader, write, valid)
    assert len(problems) == 1
    has(problems, "cadence", "")
    assert "duration" in problems[0].message or "longer than zero" in problems[0].message


@pytest.mark.parametrize("max_touches", [0, -3, "5", True, 2.5, None])
def test_bad_max_touches(loader, write, valid, max_touches):
    valid["max_touches"] = max_touches
    problems = problems_in(loader, write, valid)
    assert [str(p) for p in problems] == [
        f"{SOURCE}: max_touches: expected a whole number of at least 1, got {max_touches!r}"
    ]


@pytest.mark.parametrize("window, message", [
    ({"start": "17:00", "end": "09:00"}, "start 17:00 must be before end 09:00"),
    ({"start": "09:00", "end": "09:00"}, "start 09:00 must be before end 09:00"),
    ({"start": "18:00"}, "start 18:00 must be before end 17:00"),
])
def test_window_start_must_be_before_end(loader, write, valid, window, message):
    valid["send_window"] = window
    problems = problems_in(loader, write, valid)
    assert [str(p) for p in problems] == [f"{SOURCE}: send_window: {message}"]


def test_window_start_not_before_end_in_unquoted_yaml(loader, write, valid_yaml):
    text = valid_yaml.replace('{start: "09:00", end: "17:00", weekdays_only: true}', "{start: 17:00, end: 9:00}")
    problems = problems_of(loader, write("c.yaml", text))
    assert [str(p) for p in problems] == [f"{SOURCE}: send_window: start 17:00 must be before end 09:00"]


@pytest.mark.parametrize("value", ["25:00", "9am", "09:60", "", [9]])
def test_bad_window_time(loader, write, valid, value):
    valid["send_window"] = {"start": value, "end": "17:00"}
    problems = problems_in(loader, write, valid)
    has(problems, "send_window.start", 'expected a time like "09:00"', repr(value))


def test_bad_window_shape(loader, write, valid):
    valid["send_window"] = "9-5"
    problems = problems_in(loader, write, valid)
    has(problems, "send_window", "expected a mapping with start, end and weekdays_only")
    valid["send_window"] = {"weekdays_only": "sometimes"}
    problems = problems_in(loader, write, valid)
    has(problems, "send_window.weekdays_only", "expected true or false")


def test_boolean_window_time_is_rejected(loader, write, valid):
    valid["send_window"] = {"start": True, "end": "17:00"}
    problems = problems_in(loader, write, valid)  # actual: loads, window_start == time(0, 1)
    has(problems, "send_window.start", 'expected a time like "09:00"')


@pytest.mark.parametrize("rule", ["exit", "handoff"])
def test_rules_must_be_mappings(loader, write, valid, rule):
    valid[rule] = ["replied"]
    problems = problems_in(loader, write, valid)
    assert [str(p) for p in problems] == [f"{SOURCE}: {rule}: expected a mapping"]


# -- prerequisites that can never be met (DESIGN §4) -------------------------------------------


def test_required_topic_that_no_step_teaches_names_the_step(loader, write, valid):
    valid["topics"].append({"slug": "legal", "name": "Legal", "stage": "decision"})
    valid["steps"][2]["requires"] = ["basics", "legal"]
    problems = problems_in(loader, write, valid)
    assert [str(p) for p in problems] == [
        f"{SOURCE}: steps[2].requires: step 'pricing' requires 'legal', which no step teaches"
    ]


def test_prerequisites_may_be_taught_by_a_later_step_in_the_file(loader, write, valid):
    """Only reachability matters, not the order steps are written in."""
    valid["steps"].reverse()  # pricing (requires basics) now comes before basics
    spec = loader.load_file(write("c.yaml", valid))
    assert [s.key for s in spec.steps] == ["check-in", "pricing", "pricing-calculator", "basics", "welcome"]


def test_prerequisite_cycle_names_the_steps(loader, write, valid):
    valid["steps"][1]["requires"] = ["pricing"]  # basics needs pricing, pricing needs basics
    problems = problems_in(loader, write, valid)
    assert [str(p) for p in problems] == [
        f"{SOURCE}: steps: prerequisite cycle: steps[1] (basics), steps[2] (pricing) can never be sent"
    ]


def test_three_step_cycle(loader, write, valid):
    valid["steps"][0]["requires"] = ["pricing"]   # welcome needs pricing
    valid["steps"][1]["requires"] = ["risk"]      # basics teaches risk itself: drop it from teaches
    valid["steps"][1]["teaches"] = ["basics"]
    problems = problems_in(loader, write, valid)  # welcome -> pricing -> basics -> risk (welcome)
    assert len(problems) == 1
    message = has(problems, "steps", "prerequisite cycle").message
    for named in ("steps[0] (welcome)", "steps[1] (basics)", "steps[2] (pricing)"):
        assert named in message


def test_prerequisite_error_points_at_the_yaml_step_after_an_alternate(loader, write, valid):
    valid["topics"].append({"slug": "legal", "name": "Legal", "stage": "decision"})
    valid["steps"][3]["requires"] = ["legal"]
    problems = problems_in(loader, write, valid)
    # actual: "steps[4].requires: step 'check-in' requires 'legal', which no step teaches"
    assert [str(p) for p in problems] == [
        f"{SOURCE}: steps[3].requires: step 'check-in' requires 'legal', which no step teaches"
    ]


def test_a_step_blocked_behind_a_missing_topic_is_not_called_a_cycle(loader, write, valid):
    valid["topics"].append({"slug": "legal", "name": "Legal", "stage": "decision"})
    valid["steps"][2]["requires"] = ["basics", "legal"]
    valid["steps"][3]["requires"] = ["pricing"]
    problems = problems_in(loader, write, valid)
    has(problems, "steps[2].requires", "step 'pricing' requires 'legal', which no step teaches")
    no_problem_mentions(problems, "cycle")


def test_an_invalid_step_still_counts_as_teaching_its_topics(loader, write, valid):
    valid["steps"][1]["template"] = "no-such-template"  # basics teaches basics; pricing requires it
    problems = problems_in(loader, write, valid)
    assert {p.path for p in problems} == {"steps[1].template"}
    no_problem_mentions(problems, "which no step teaches")


# -- every error at once -----------------------------------------------------------------------


def test_all_errors_are_reported_at_once(loader, write, valid, templates_dir):
    (templates_dir / "plain.txt").unlink()
    valid["slug"] = "Bad Slug"
    valid["cadence"] = "3 weeks"
    valid["max_touches"] = 0
    valid["send_window"] = {"start": "17:00", "end": "09:00"}
    valid["colour"] = "blue"
    valid["topics"].append({"slug": "risk", "name": "Risk again", "stage": "awareness"})
    valid["topics"].append({"slug": "legal", "name": "Legal", "stage": "purchase"})
    valid["steps"][0]["links"][0]["url"] = "/report"
    valid["steps"][1]["teaches"] = ["basics", "pricng"]
    valid["steps"][2]["alternate"]["key"] = "welcome"
    valid["steps"][3]["requires"] = ["nothing-like-it"]
    problems = problems_in(loader, write, valid)
    expected = [
        ("colour", "unknown key"),
        ("slug", "expected lowercase letters"),
        ("cadence", "duration"),
        ("max_touches", "at least 1"),
        ("send_window", "must be before end"),
        ("topics[3].slug", "duplicate topic 'risk'"),
        ("topics[4].stage", "expected one of"),
        ("steps[0].links[0].url", "absolute http(s) URL"),
        ("steps[1].teaches", "unknown topic 'pricng' (did you mean 'pricing'?)"),
        ("steps[2].alternate.key", "duplicate step key 'welcome'"),
        ("steps[3].requires", "unknown topic 'nothing-like-it'"),
        ("steps[3].template", "templates/plain.txt"),
    ]
    for path, fragment in expected:
        has(problems, path, fragment)
    assert all(p.source == SOURCE for p in problems)


def test_non_text_keys_are_reported_not_a_crash(loader, write, valid_yaml):
    problems = problems_of(loader, write("c.yaml", valid_yaml + "1: one\nnme: typo\n"))
    has(problems, "1", "unknown key")
    has(problems, "nme", "unknown key (did you mean 'name'?)")


# -- load_dir and checks across files ----------------------------------------------------------


def other_campaign(valid, slug="second", pricing_stage="decision"):
    data = dict(valid, slug=slug, name=slug.title())
    data["topics"] = [dict(t) for t in valid["topics"]]
    data["topics"][2]["stage"] = pricing_stage
    return data


def test_load_dir_loads_good_files_when_another_is_bad(loader, write, valid, campaigns_dir):
    write("a-good.yaml", valid)
    write("b-bad.yaml", {**valid, "slug": "broken", "max_touches": 0})
    write("c-broken-yaml.yml", "slug: [\n")
    write("d-good.yml", other_campaign(valid))
    (campaigns_dir / "notes.txt").write_text("not a campaign")
    specs, problems = loader.load_dir(campaigns_dir)
    assert [s.slug for s in specs] == ["acme-onboarding", "second"]
    assert [(p.source, p.path) for p in problems] == [
        ("campaigns/b-bad.yaml", "max_touches"), ("campaigns/c-broken-yaml.yml", "line 2, column 1"),
    ]


def test_load_dir_of_an_empty_folder(loader, campaigns_dir):
    assert loader.load_dir(campaigns_dir) == ([], [])


def test_duplicate_campaign_slug_across_files_loads_neither(loader, write, valid, campaigns_dir):
    write("a.yaml", valid)
    write("b.yaml", {**valid, "name": "Impostor"})
    write("c.yaml", other_campaign(valid))
    specs, problems = loader.load_dir(campaigns_dir)
    assert [s.source for s in specs] == ["campaigns/c.yaml"]
    assert [str(p) for p in problems] == [
        "campaigns/a.yaml: slug: campaign 'acme-onboarding' is also defined in campaigns/b.yaml; neither file is synced",
        "campaigns/b.yaml: slug: campaign 'acme-onboarding' is also defined in campaigns/a.yaml; neither file is synced",
    ]


def test_duplicate_slug_changes_nothing_in_the_synced_campaign(loader, write, valid, campaigns_dir, database_url):
    from datetime import datetime, timezone

    from sqlalchemy import select

    from nurture_mail.campaigns import sync_all
    from nurture_mail.extensions import Database
    from nurture_mail.models import Campaign

    now = datetime(2026, 3, 2, 14, 0, tzinfo=timezone.utc)
    database = Database(database_url)
    try:
        write("a.yaml", valid)
        specs, problems = loader.load_dir(campaigns_dir)
        with database.session() as session:
            sync_all(session, specs, now)
        write("a.yaml", {**valid, "name": "Renamed in a"})
        write("b.yaml", {**valid, "name": "Renamed in b"})
        specs, problems = loader.load_dir(campaigns_dir)
        assert specs == [] and len(problems) == 2
        with database.session() as session:
            result = sync_all(session, specs, now)
            assert result.updated == [] and result.created == []
            assert session.scalars(select(Campaign.name)).all() == ["Acme onboarding"]
    finally:
        database.dispose()


def test_topic_with_different_stages_in_two_files(loader, write, valid, campaigns_dir):
    write("a.yaml", valid)
    write("b.yaml", other_campaign(valid, pricing_stage="consideration"))
    specs, problems = loader.load_dir(campaigns_dir)
    assert [s.slug for s in specs] == ["acme-onboarding"]
    assert [str(p) for p in problems] == [
        "campaigns/b.yaml: topics[2].stage: topic 'pricing' is 'decision' in campaigns/a.yaml, here 'consideration'"
    ]


def test_same_topic_same_stage_in_two_files_is_fine(loader, write, valid, campaigns_dir):
    write("a.yaml", valid)
    write("b.yaml", other_campaign(valid))
    specs, problems = loader.load_dir(campaigns_dir)
    assert len(specs) == 2 and problems == []


def test_check_across_files_reports_every_clash_of_a_file(loader, valid):
    a = loader.load_data(valid, "campaigns/a.yaml")
    clash = loader.load_data(other_campaign(valid, slug="acme-onboarding", pricing_stage="awareness"), "campaigns/b.yaml")
    good = loader.load_data(other_campaign(valid, slug="third"), "campaigns/c.yaml")
    specs, problems = check_across_files([good, a, clash])
    assert specs == [good]
    assert [(p.source, p.path) for p in problems] == [
        ("campaigns/a.yaml", "slug"), ("campaigns/b.yaml", "slug"), ("campaigns/b.yaml", "topics[2].stage")]
