"""The campaign editor's core: round-trip YAML (comments, order, quoting kept), form edits,
validation errors under their fields, the diff, and saving with a sync."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from nurture_mail.campaigns import editor
from nurture_mail.exceptions import CampaignDefinitionError, Problem

ROOT = Path(__file__).resolve().parents[2]
NORTHWIND = ROOT / "campaigns" / "northwind-security.yaml"


def form_of(text: str) -> dict[str, str]:
    """The form the editor shows for ``text``, as the browser posts it back unchanged."""
    v = editor.form_values(editor.parse(text))
    form = {"name": v["name"], "description": v["description"], "cadence": v["cadence"],
            "max_touches": v["max_touches"], "send_window.start": v["send_window"]["start"],
            "send_window.end": v["send_window"]["end"], "topics.count": str(len(v["topics"]) + 1),
            "steps.count": str(len(v["steps"]) + 1)}
    if v["send_window"]["weekdays_only"]:
        form["send_window.weekdays_only"] = "on"
    for key in ("engagement_at_least", "fit_at_least", "hand_raiser"):
        form[f"handoff.{key}"] = v["handoff"][key]
    for i, topic in enumerate(v["topics"]):
        form.update({f"topics[{i}].{k}": value for k, value in topic.items()})
    for i, step in enumerate(v["steps"]):
        p = f"steps[{i}]"
        form[f"{p}.position"] = str(i + 1)
        form.update({f"{p}.{k}": step[k] for k in ("key", "subject", "preheader", "template", "teaches", "requires")})
        form[f"{p}.links.count"] = str(len(step["links"]) + 1)
        for j, link in enumerate(step["links"]):
            form.update({f"{p}.links[{j}].{k}": link[k] for k in ("name", "url", "label", "topic")})
            if link["hand_raiser"]:
                form[f"{p}.links[{j}].hand_raiser"] = "on"
        form.update({f"{p}.alternate.{k}": value for k, value in step["alternate"].items()})
    return form


def apply(text: str, **changes: str) -> str:
    form = form_of(text)
    form.update(changes)
    return editor.dump(editor.apply_form(editor.parse(text), form))


def test_the_sample_campaign_round_trips_byte_for_byte() -> None:
    text = NORTHWIND.read_text()
    assert editor.dump(editor.parse(text)) == text
    assert apply(text) == text  # the unchanged form writes the same file


def test_an_edit_changes_only_its_line_and_keeps_every_comment() -> None:
    text = NORTHWIND.read_text()
    new = apply(text, max_touches="15", **{"steps[0].subject": "Five cloud risks, {{ lead.first_name }}"})
    diff = [(kind, line) for kind, line in editor.diff_lines(text, new, "x.yaml") if kind in ("add", "del")]
    assert diff == [
        ("del", "-max_touches: 14"), ("add", "+max_touches: 15"),
        ("del", "-    subject: \"{{ lead.first_name|default('Hi there', true) }}, the 5 cloud risks mid-market teams "
                "underestimate\""),
        ("add", "+    subject: \"Five cloud risks, {{ lead.first_name }}\""),
    ]
    comments = [line for line in text.splitlines() if line.lstrip().startswith("#")]
    assert comments and all(c in new.splitlines() for c in comments)
    assert list(yaml.safe_load(new)) == list(yaml.safe_load(text))  # key order


def test_a_file_without_optional_keys_stays_without_them(valid_yaml: str) -> None:
    bare = "\n".join(line for line in valid_yaml.splitlines()
                     if not line.startswith(("send_window:", "cadence:", "max_touches:", "handoff:"))) + "\n"
    assert apply(bare) == bare


def test_new_rows_reorder_and_removal(valid_yaml: str) -> None:
    form = form_of(valid_yaml)
    form.update({"topics[3].slug": "onboarding", "topics[3].name": "Onboarding", "topics[3].stage": "decision",
                 "steps[4].key": "onboard", "steps[4].subject": "Getting started", "steps[4].template": "plain",
                 "steps[4].teaches": "onboarding, pricing", "steps[4].requires": "basics", "steps[4].position": "0.5",
                 "steps[3].remove": "1",
                 "steps[0].links[1].name": "more", "steps[0].links[1].url": "https://acme.example/more",
                 "steps[0].links[1].hand_raiser": "on"})
    data = yaml.safe_load(editor.dump(editor.apply_form(editor.parse(valid_yaml), form)))
    assert data["topics"][-1] == {"slug": "onboarding", "name": "Onboarding", "stage": "decision"}
    assert [s["key"] for s in data["steps"]] == ["onboard", "welcome", "basics", "pricing"]
    assert data["steps"][0]["teaches"] == ["onboarding", "pricing"] and data["steps"][0]["requires"] == ["basics"]
    assert data["steps"][1]["links"][1] == {"name": "more", "url": "https://acme.example/more", "hand_raiser": True}


def test_values_a_yaml_1_1_reader_would_misread_are_quoted(valid_yaml: str) -> None:
    new = apply(valid_yaml, **{"send_window.start": "08:30", "steps[1].preheader": "yes", "name": "null"})
    data = yaml.safe_load(new)  # the loader's reader (PyYAML, YAML 1.1)
    assert data["send_window"]["start"] == "08:30" and data["steps"][1]["preheader"] == "yes"
    assert data["name"] == "null"


def test_validation_errors_land_beside_their_fields(valid_yaml, templates_dir, campaigns_dir) -> None:
    text = apply(valid_yaml, **{"steps[2].teaches": "pricng", "send_window.start": "25:00",
                                "steps[0].links[0].url": "ftp://x", "cadence": "soon"})
    result = editor.validate_text(text, source="campaigns/a.yaml", templates_dir=templates_dir,
                                  campaigns_dir=campaigns_dir)
    assert not result.ok
    fields = editor.field_names(editor.form_values(editor.parse(text)))
    errors = editor.field_errors(result.problems, fields)
    assert errors["steps[2].teaches"] == ["unknown topic 'pricng' (did you mean 'pricing'?)"]
    assert errors["send_window.start"][0].startswith("expected a time like \"09:00\"")
    assert errors["steps[0].links[0].url"][0].startswith("expected an absolute http(s) URL")
    assert errors["cadence"][0].startswith("expected a duration like 3d")


def test_field_errors_fall_back_to_the_nearest_enclosing_field() -> None:
    problems = [Problem("a", "steps[1].alternate.links[0].url", "bad"), Problem("a", "steps", "cycle"),
                Problem("a", "exit.when", "odd"), Problem("a", "line 3, column 1", "invalid YAML")]
    errors = editor.field_errors(problems, ["steps", "steps[1]", "steps[1].alternate", "exit"])
    assert errors == {"steps[1].alternate": ["bad"], "steps": ["cycle"], "exit": ["odd"],
                      "": ["line 3, column 1: invalid YAML"]}


def test_a_prerequisite_cycle_is_reported_on_the_steps(valid_yaml, templates_dir, campaigns_dir) -> None:
    text = apply(valid_yaml, **{"steps[1].requires": "pricing"})  # pricing requires basics: a cycle
    result = editor.validate_text(text, source="campaigns/a.yaml", templates_dir=templates_dir,
                                  campaigns_dir=campaigns_dir)
    assert any(p.path.startswith("steps") and "never be sent" in p.message for p in result.problems)


def test_slug_and_topic_stage_are_checked_against_the_other_files(valid_yaml, templates_dir, campaigns_dir) -> None:
    (campaigns_dir / "other.yaml").write_text(valid_yaml)

    def problems(text: str) -> dict[str, str]:
        result = editor.validate_text(text, source="campaigns/new.yaml", templates_dir=templates_dir,
                                      campaigns_dir=campaigns_dir)
        assert not result.ok
        return {p.path: p.message for p in result.problems}

    assert "also defined in" in problems(valid_yaml)["slug"]
    restaged = valid_yaml.replace("slug: acme-onboarding", "slug: acme-two").replace(
        "stage: decision, description", "stage: awareness, description")
    assert "topic 'pricing' is 'decision'" in problems(restaged)["topics[2].stage"]


def test_save_writes_starter_templates_and_syncs(session_factory, templates_dir, campaigns_dir) -> None:
    now = datetime(2026, 12, 3, 10, tzinfo=timezone.utc)
    file = editor.campaign_file(campaigns_dir, "trial")
    text = editor.new_campaign_text("trial", "Trial")
    with session_factory() as session:
        result = editor.save_campaign(session, file, text, base_hash=file.hash, templates_dir=templates_dir,
                                      campaigns_dir=campaigns_dir, now=now)
        session.commit()
    assert result.outcome == "created"
    assert result.templates_written == ["templates/trial/welcome.html", "templates/trial/welcome.txt"]
    assert (campaigns_dir / "trial.yaml").read_text() == text
    # A second save from the same starting point is refused: the file changed meanwhile.
    with session_factory() as session, pytest.raises(editor.FileChanged):
        editor.save_campaign(session, file, text, base_hash=file.hash, templates_dir=templates_dir,
                             campaigns_dir=campaigns_dir, now=now)


def test_save_refuses_an_invalid_text_and_writes_nothing(session_factory, templates_dir, campaigns_dir) -> None:
    file = editor.campaign_file(campaigns_dir, "trial")
    bad = editor.new_campaign_text("trial", "Trial").replace("teaches: [first-topic]", "teaches: [nope]")
    with session_factory() as session, pytest.raises(CampaignDefinitionError) as raised:
        editor.save_campaign(session, file, bad, base_hash=file.hash, templates_dir=templates_dir,
                             campaigns_dir=campaigns_dir, now=datetime(2026, 12, 3, tzinfo=timezone.utc))
    assert raised.value.problems[0].path == "steps[0].teaches"
    assert not (campaigns_dir / "trial.yaml").exists() and not (templates_dir / "trial").exists()


def test_a_read_only_folder_is_reported(campaigns_dir: Path) -> None:
    campaigns_dir.chmod(0o555)
    try:
        file = editor.campaign_file(campaigns_dir, "trial")
        if file.writable:  # running as root: permissions do not bind
            pytest.skip("the file system ignores permissions for this user")
        with pytest.raises(Exception, match="read-only"):
            editor.save_campaign(None, file, "", base_hash=file.hash, templates_dir=campaigns_dir,
                                 campaigns_dir=campaigns_dir, now=datetime(2026, 12, 3, tzinfo=timezone.utc))
    finally:
        campaigns_dir.chmod(0o755)


@pytest.fixture
def session_factory(make_app, database_url):
    return make_app(database_url).extensions["nurture"].db.session
