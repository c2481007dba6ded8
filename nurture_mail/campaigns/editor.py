"""Editing a campaign file from the web form, keeping the file the source of truth.

The file is read with ruamel.yaml's round-trip mode, the form's values are applied to that
document (only what changed is touched), and the result is written back with its comments,
key order, flow style and quoting intact. Validation is the loader's, on exactly the text that
would be written, so the editor can never save what ``sync-campaigns`` would refuse.

Form fields are named like the loader's error paths (``steps[2].teaches``,
``send_window.start``, ``steps[0].links[1].url``), so every problem lands beside its field
(``field_errors``). Saving re-validates the posted text, refuses a file changed on disk since the
editor read it, writes atomically, creates starter templates for new template names, and syncs.
"""
from __future__ import annotations

import difflib
import hashlib
import io
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml as pyyaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString
from sqlalchemy.orm import Session

from ..exceptions import CampaignDefinitionError, InvalidInput, Problem
from .loader import NOT_CAMPAIGNS, SLUG, CampaignLoader, check_across_files
from .spec import CampaignSpec
from .sync import sync_campaign

__all__ = [
    "CampaignFile", "EditResult", "SaveResult", "apply_form", "campaign_file", "diff_lines", "dump",
    "field_errors", "folder_writable", "new_campaign_text", "parse", "save_campaign", "starter_templates",
    "validate_text",
]

STEP_FIELDS = ("key", "subject", "preheader", "template")
ALTERNATE_FIELDS = ("key", "subject", "preheader", "template")
LINK_FIELDS = ("name", "url", "label", "topic")
_INDEX = re.compile(r"\[(\d+)\]")


def _yaml() -> YAML:
    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 4096  # never re-wrap a long subject or URL
    y.indent(mapping=2, sequence=4, offset=2)
    return y


# -- reading and writing ----------------------------------------------------------------------


def parse(text: str, source: str = "campaign") -> CommentedMap:
    """The round-trip document; a syntax error is a Problem with its line and column."""
    try:
        doc = _yaml().load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise CampaignDefinitionError([Problem(source, where, f"invalid YAML: {getattr(exc, 'problem', exc)}")]) \
            from None
    if doc is None:
        doc = CommentedMap()
    if not isinstance(doc, CommentedMap):
        raise CampaignDefinitionError([Problem(source, "", "expected a mapping with slug, name, topics and steps")])
    return doc


def dump(doc: CommentedMap) -> str:
    buffer = io.StringIO()
    _yaml().dump(doc, buffer)
    return buffer.getvalue()


def digest(text: str) -> str:
    """What the editor read, so a save can refuse a file that changed on disk meanwhile."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def new_campaign_text(slug: str, name: str) -> str:
    """A small valid-looking starting point for a campaign created in the UI."""
    return f"""\
# {name}
#
# Created in the campaign editor. This file is the campaign's source of truth: keep it in git.

slug: {slug}
name: {_quoted(name)}
description: ""
cadence: 3d
send_window: {{start: "09:00", end: "17:00", weekdays_only: true}}
max_touches: 6

topics:
  - {{slug: first-topic, name: "First topic", stage: awareness}}

steps:
  - key: welcome
    subject: "{{{{ lead.first_name|default('Hi there', true) }}}}, welcome"
    template: {slug}/welcome
    teaches: [first-topic]
"""


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- applying the form --------------------------------------------------------------------------


def _scalar(old: Any, value: str) -> Any:
    """``value`` as the file should hold it: the old quoting style kept, and quoted whenever a
    YAML 1.1 reader (the loader's) would otherwise read it as something else than this text."""
    if isinstance(old, DoubleQuotedScalarString):
        return DoubleQuotedScalarString(value)
    if isinstance(old, SingleQuotedScalarString):
        return SingleQuotedScalarString(value)
    try:
        plain = pyyaml.safe_load(value)
    except pyyaml.YAMLError:
        plain = None
    if plain != value or value != value.strip() or "\n" in value:
        return DoubleQuotedScalarString(value)
    return value


def _number(value: str) -> Any:
    text = value.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text  # kept as typed: the loader names the field and the problem


def _set_text(mapping: CommentedMap, key: str, value: str | None, *, optional: bool = True) -> None:
    value = (value or "").replace("\r\n", "\n")
    old = mapping.get(key)
    if value.strip() == "" and optional:
        if key in mapping:
            del mapping[key]
        return
    if isinstance(old, str) and str(old) == value:
        return
    mapping[key] = _scalar(old, value)


def _set_value(mapping: CommentedMap, key: str, value: Any) -> None:
    if value is None:
        if key in mapping:
            del mapping[key]
    elif key not in mapping or mapping[key] != value or type(mapping[key]) is not type(value):
        mapping[key] = value


def _topic_list(raw: str) -> list[str]:
    return [t for t in re.split(r"[\s,]+", raw or "") if t]


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _set_topics(mapping: CommentedMap, key: str, raw: str) -> None:
    wanted = _topic_list(raw)
    if wanted == _as_list(mapping.get(key)):
        return
    if not wanted:
        del mapping[key]
        return
    seq = CommentedSeq(wanted)
    seq.fa.set_flow_style()
    mapping[key] = seq


def _flow_map() -> CommentedMap:
    item = CommentedMap()
    item.fa.set_flow_style()
    return item


def _count(form: Mapping[str, Any], name: str, default: int) -> int:
    try:
        return max(0, min(int(form.get(name, default)), 500))
    except (TypeError, ValueError):
        return default


def _blank(form: Mapping[str, Any], prefix: str, fields: Iterable[str]) -> bool:
    return all(not str(form.get(f"{prefix}.{f}", "") or "").strip() for f in fields)


def _replace_items(seq: CommentedSeq, items: list[Any]) -> None:
    if len(seq) == len(items) and all(a is b for a, b in zip(seq, items)):
        return
    # Comments belong to the item they follow, so they travel with it when steps are reordered.
    del seq[:]
    seq.extend(items)


def apply_form(doc: CommentedMap, form: Mapping[str, Any], *, new: bool = False) -> CommentedMap:
    """Apply the editor's fields to the document, touching only what changed.

    ``form`` maps field names (loader paths) to text; checkboxes are present when ticked. A row
    whose fields are all blank is dropped (or never added), as is a row marked ``.remove``.
    """
    if new:
        _set_text(doc, "slug", form.get("slug"), optional=False)
    _set_text(doc, "name", form.get("name"), optional=False)
    _set_text(doc, "description", form.get("description"))
    _set_text(doc, "cadence", form.get("cadence"))
    touches = str(form.get("max_touches", "") or "").strip()
    _set_value(doc, "max_touches", _number(touches) if touches else None)

    window = doc.get("send_window")
    weekdays_only = bool(form.get("send_window.weekdays_only"))
    given = any(str(form.get(f"send_window.{key}", "") or "").strip() for key in ("start", "end"))
    if isinstance(window, CommentedMap) or given or not weekdays_only:  # absent and default: stays absent
        if not isinstance(window, CommentedMap):
            window = _flow_map()
        for key in ("start", "end"):
            _set_text(window, key, form.get(f"send_window.{key}"))
        _set_value(window, "weekdays_only", weekdays_only)
        if doc.get("send_window") is not window:
            doc["send_window"] = window

    handoff = doc.get("handoff")
    if not isinstance(handoff, CommentedMap):
        handoff = CommentedMap()
    for key in ("engagement_at_least", "fit_at_least"):
        raw = str(form.get(f"handoff.{key}", "") or "").strip()
        if raw.lower() == "none":
            if key not in handoff or handoff[key] is not None:
                handoff[key] = None  # explicitly "not required"
        else:
            _set_value(handoff, key, _number(raw) if raw else None)
    raiser = str(form.get("handoff.hand_raiser", "") or "")
    _set_value(handoff, "hand_raiser", {"yes": True, "no": False}.get(raiser))
    if handoff:
        if doc.get("handoff") is not handoff:
            doc["handoff"] = handoff
    elif "handoff" in doc:
        del doc["handoff"]

    _apply_topics(doc, form)
    _apply_steps(doc, form)
    return doc


def _apply_topics(doc: CommentedMap, form: Mapping[str, Any]) -> None:
    seq = doc.get("topics")
    if not isinstance(seq, CommentedSeq):
        seq = doc["topics"] = CommentedSeq()
    items = []
    for i in range(_count(form, "topics.count", len(seq))):
        prefix = f"topics[{i}]"
        existing = seq[i] if i < len(seq) and isinstance(seq[i], CommentedMap) else None
        if form.get(f"{prefix}.remove") or _blank(form, prefix, ("slug", "name")):
            continue
        item = existing if existing is not None else _flow_map()
        _set_text(item, "slug", form.get(f"{prefix}.slug"), optional=False)
        _set_text(item, "name", form.get(f"{prefix}.name"), optional=False)
        _set_text(item, "stage", form.get(f"{prefix}.stage"), optional=False)
        items.append(item)
    _replace_items(seq, items)


def _apply_steps(doc: CommentedMap, form: Mapping[str, Any]) -> None:
    seq = doc.get("steps")
    if not isinstance(seq, CommentedSeq):
        seq = doc["steps"] = CommentedSeq()
    rows: list[tuple[float, int, CommentedMap]] = []
    for i in range(_count(form, "steps.count", len(seq))):
        prefix = f"steps[{i}]"
        existing = seq[i] if i < len(seq) and isinstance(seq[i], CommentedMap) else None
        if form.get(f"{prefix}.remove") or _blank(form, prefix, ("key", "subject", "template")):
            continue
        item = existing if existing is not None else CommentedMap()
        for key in STEP_FIELDS:
            _set_text(item, key, form.get(f"{prefix}.{key}"), optional=key == "preheader")
        for key in ("teaches", "requires"):
            _set_topics(item, key, str(form.get(f"{prefix}.{key}", "") or ""))
        _apply_links(item, form, prefix)
        _apply_alternate(item, form, prefix)
        try:
            position = float(form.get(f"{prefix}.position") or i + 1)
        except ValueError:
            position = i + 1
        rows.append((position, i, item))
    rows.sort(key=lambda row: (row[0], row[1]))
    _replace_items(seq, [item for _, _, item in rows])


def _apply_links(step: CommentedMap, form: Mapping[str, Any], prefix: str) -> None:
    seq = step.get("links")
    if not isinstance(seq, CommentedSeq):
        seq = CommentedSeq()
    items = []
    for j in range(_count(form, f"{prefix}.links.count", len(seq))):
        lp = f"{prefix}.links[{j}]"
        existing = seq[j] if j < len(seq) and isinstance(seq[j], CommentedMap) else None
        if form.get(f"{lp}.remove") or _blank(form, lp, ("name", "url")):
            continue
        item = existing if existing is not None else _flow_map()
        _set_text(item, "name", form.get(f"{lp}.name"), optional=False)
        _set_text(item, "url", form.get(f"{lp}.url"), optional=False)
        _set_text(item, "label", form.get(f"{lp}.label"))
        _set_text(item, "topic", form.get(f"{lp}.topic"))
        _set_value(item, "hand_raiser", True if form.get(f"{lp}.hand_raiser") else None)
        items.append(item)
    if items:
        _replace_items(seq, items)
        if step.get("links") is not seq:
            step["links"] = seq
    elif "links" in step:
        del step["links"]


def _apply_alternate(step: CommentedMap, form: Mapping[str, Any], prefix: str) -> None:
    ap = f"{prefix}.alternate"
    if _blank(form, ap, ALTERNATE_FIELDS):
        if "alternate" in step:
            del step["alternate"]
        return
    alt = step.get("alternate")
    if not isinstance(alt, CommentedMap):
        alt = step["alternate"] = CommentedMap()
    for key in ALTERNATE_FIELDS:
        _set_text(alt, key, form.get(f"{ap}.{key}"), optional=key == "preheader")


# -- the form's view of a document ------------------------------------------------------------


def _mapping_or_empty(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def form_values(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Plain data for the editor's template: every field as the form shows it."""

    def text(value: Any) -> str:
        return "" if value is None else str(value)

    window = _mapping_or_empty(doc.get("send_window"))
    handoff = _mapping_or_empty(doc.get("handoff"))
    raiser = handoff.get("hand_raiser")

    def threshold(key: str) -> str:
        if key not in handoff:
            return ""
        return "none" if handoff[key] is None else text(handoff[key])

    steps = []
    for item in doc.get("steps") or []:
        if not isinstance(item, Mapping):
            continue
        alt = _mapping_or_empty(item.get("alternate"))
        steps.append({
            **{k: text(item.get(k)) for k in STEP_FIELDS},
            "teaches": ", ".join(_as_list(item.get("teaches"))),
            "requires": ", ".join(_as_list(item.get("requires"))),
            "links": [{**{k: text(link.get(k)) for k in LINK_FIELDS}, "hand_raiser": bool(link.get("hand_raiser"))}
                      for link in (item.get("links") or []) if isinstance(link, Mapping)],
            "alternate": {k: text(alt.get(k)) for k in ALTERNATE_FIELDS},
            "alternate_links": len(alt.get("links") or []) if isinstance(alt.get("links"), list) else 0,
        })
    return {
        "slug": text(doc.get("slug")), "name": text(doc.get("name")), "description": text(doc.get("description")),
        "cadence": text(doc.get("cadence")), "max_touches": text(doc.get("max_touches")),
        "send_window": {"start": text(window.get("start")), "end": text(window.get("end")),
                        "weekdays_only": bool(window.get("weekdays_only", True))},
        "handoff": {"engagement_at_least": threshold("engagement_at_least"),
                    "fit_at_least": threshold("fit_at_least"),
                    "hand_raiser": "" if raiser is None else ("yes" if raiser else "no"),
                    "scoring": "scoring" in handoff},
        "topics": [{k: text(t.get(k)) for k in ("slug", "name", "stage")}
                   for t in (doc.get("topics") or []) if isinstance(t, Mapping)],
        "steps": steps,
    }


def field_errors(problems: Iterable[Problem], fields: Iterable[str]) -> dict[str, list[str]]:
    """Each problem under the form field it is about: its own path when the form has that
    field, else the nearest enclosing one (``steps[2].links[0]`` -> ``steps[2].links``,
    ``steps[2]``, ``steps``), else ``""`` (shown at the top of the form)."""
    known = set(fields)
    out: dict[str, list[str]] = {}
    for problem in problems:
        path = problem.path
        while path and path not in known:
            path = _parent(path)
        out.setdefault(path, []).append(problem.message if path or not problem.path
                                        else f"{problem.path}: {problem.message}")
    return out


def _parent(path: str) -> str:
    if path.endswith("]"):
        return path[: path.rindex("[")]
    return path.rpartition(".")[0]


# -- validating ---------------------------------------------------------------------------------


@dataclass
class CampaignFile:
    """Where a campaign's file is and what the editor may do with it."""

    path: Path
    source: str
    exists: bool
    writable: bool
    text: str

    @property
    def hash(self) -> str:
        return digest(self.text)


def folder_writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


def campaign_file(campaigns_dir: Path, slug: str, source: str | None = None) -> CampaignFile:
    """The file a campaign was synced from (``source`` as stored, e.g. ``campaigns/x.yaml``),
    else ``<campaigns_dir>/<slug>.yaml`` for a new one."""
    if not SLUG.match(slug or ""):
        raise InvalidInput("expected lowercase letters, digits and dashes", "slug")
    path = campaigns_dir / f"{slug}.yaml"
    if source:
        candidate = campaigns_dir / Path(source).name
        if candidate.suffix in (".yaml", ".yml") and candidate.name not in NOT_CAMPAIGNS:
            path = candidate
    exists = path.is_file()
    text = path.read_text(encoding="utf-8") if exists else ""
    writable = os.access(path, os.W_OK) if exists else folder_writable(campaigns_dir)
    writable = writable and folder_writable(campaigns_dir)  # the atomic write needs the folder too
    return CampaignFile(path, f"{campaigns_dir.name}/{path.name}", exists, writable, text)


def starter_templates(doc: Mapping[str, Any], templates_dir: Path) -> dict[str, str]:
    """``dir/name.html|txt`` -> starter source, for every step template that does not exist yet."""
    out: dict[str, str] = {}
    for item in doc.get("steps") or []:
        if not isinstance(item, Mapping):
            continue
        links = [link for link in item.get("links") or [] if isinstance(link, Mapping) and link.get("name")]
        emails = [item]
        if isinstance(item.get("alternate"), Mapping):
            alt = item["alternate"]
            emails.append({**alt, "links": alt.get("links") if alt.get("links") is not None else links})
        for email in emails:
            template = email.get("template")
            if not isinstance(template, str) or not template.strip() or template.startswith("/") \
                    or ".." in Path(template).parts:
                continue
            email_links = [lk for lk in email.get("links") or links if isinstance(lk, Mapping) and lk.get("name")]
            for suffix, maker in ((".html", _starter_html), (".txt", _starter_text)):
                name = f"{template}{suffix}"
                if not (templates_dir / name).is_file():
                    out[name] = maker(email_links)
    return out


def _starter_html(links: list[Mapping[str, Any]]) -> str:
    buttons = "".join(
        '<table role="presentation" class="button-table" cellpadding="0" cellspacing="0" border="0">\n'
        f'  <tr><td class="button-cell" align="center"><a class="button" href="{{{{ link(\'{link["name"]}\') }}}}">'
        f'{link.get("label") or link["name"]}</a></td></tr>\n</table>\n'
        for link in links)
    return ('{% extends "base.html" %}\n{% block content %}\n'
            "<p>Hi {{ lead.first_name|default('there', true) }},</p>\n"
            "<p>Write what this email teaches here: one idea, in the reader's words.</p>\n"
            f"{buttons}{{% endblock %}}\n")


def _starter_text(links: list[Mapping[str, Any]]) -> str:
    lines = "".join(f"{link.get('label') or link['name']}:\n{{{{ link('{link['name']}') }}}}\n\n" for link in links)
    return ('{% extends "base.txt" %}\n{% block content -%}\n'
            "Hi {{ lead.first_name|default('there', true) }},\n\n"
            "Write what this email teaches here: one idea, in the reader's words.\n\n"
            f"{lines}{{% endblock %}}\n")


@dataclass
class EditResult:
    """The text the form produced, what is wrong with it, and what saving it would create."""

    text: str
    problems: list[Problem] = field(default_factory=list)
    spec: CampaignSpec | None = None
    new_templates: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems and self.spec is not None


def validate_text(text: str, *, source: str, templates_dir: Path, campaigns_dir: Path,
                  own_path: Path | None = None) -> EditResult:
    """Validate exactly ``text`` with the loader, as ``sync-campaigns`` would, and against the
    other campaign files (unique slug, one stage per topic); missing step templates count as
    the starters saving would write."""
    try:
        doc = parse(text, source)
    except CampaignDefinitionError as exc:
        return EditResult(text, exc.problems)
    starters = starter_templates(doc, templates_dir)
    loader = CampaignLoader(templates_dir, root=campaigns_dir.parent, pending_templates=starters)
    try:
        data = pyyaml.safe_load(text)
    except pyyaml.YAMLError as exc:  # ruamel (YAML 1.2) and PyYAML (1.1) disagree: PyYAML decides
        return EditResult(text, [Problem(source, "", f"invalid YAML: {exc}")])
    try:
        spec = loader.load_data(data, source)
    except CampaignDefinitionError as exc:
        return EditResult(text, exc.problems, new_templates=starters)
    others = [s for s in _other_specs(loader, campaigns_dir, own_path)]
    good, cross = check_across_files([*others, spec])
    cross = [p for p in cross if p.source == source]
    return EditResult(text, cross, spec if spec in good and not cross else None, starters)


def _other_specs(loader: CampaignLoader, campaigns_dir: Path, own_path: Path | None) -> list[CampaignSpec]:
    specs = []
    for path in sorted([*campaigns_dir.glob("*.yaml"), *campaigns_dir.glob("*.yml")]):
        if path.name in NOT_CAMPAIGNS or (own_path is not None and path.resolve() == own_path.resolve()):
            continue
        try:
            specs.append(loader.load_file(path))
        except CampaignDefinitionError:
            continue
    return specs


def diff_lines(old: str, new: str, name: str) -> list[tuple[str, str]]:
    """A unified diff as ``(kind, line)``, kind one of ``head``, ``hunk``, ``add``, ``del``, ``same``."""
    out: list[tuple[str, str]] = []
    for line in difflib.unified_diff(old.splitlines(), new.splitlines(), f"a/{name}", f"b/{name}", lineterm=""):
        if line.startswith(("---", "+++")):
            kind = "head"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "same"
        out.append((kind, line))
    return out


# -- saving -------------------------------------------------------------------------------------


class FileChanged(InvalidInput):
    """The file on disk is not the one the editor showed: saving would lose someone's change."""


@dataclass
class SaveResult:
    path: Path
    outcome: str  # created | updated | unchanged (the sync's word)
    templates_written: list[str]


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_campaign(session: Session, file: CampaignFile, text: str, *, base_hash: str, templates_dir: Path,
                  campaigns_dir: Path, now: datetime) -> SaveResult:
    """Validate ``text`` again, write it (and its starter templates), sync it into the database.

    Raises CampaignDefinitionError with every problem, ``FileChanged`` when the file on disk is
    not the one ``base_hash`` names (or exists already, for a new campaign), and InvalidInput
    when the folder is read-only.
    """
    if not file.writable:
        raise InvalidInput(f"{file.source} is read-only here; download the file and commit it instead", "file")
    current = file.path.read_text(encoding="utf-8") if file.path.is_file() else ""
    if digest(current) != base_hash:
        what = "was changed on disk" if file.exists else "was created meanwhile"
        raise FileChanged(f"{file.source} {what} since you opened the editor; reload it and apply your "
                          "change again", "file")
    result = validate_text(text, source=file.source, templates_dir=templates_dir, campaigns_dir=campaigns_dir,
                           own_path=file.path)
    if not result.ok:
        raise CampaignDefinitionError(result.problems or [Problem(file.source, "", "not a valid campaign")])
    written = []
    for name, source in result.new_templates.items():
        target = templates_dir / name
        if not target.exists():
            _atomic_write(target, source)
            written.append(f"templates/{name}")
    _atomic_write(file.path, text)
    # Read back from disk with the loader itself: what is synced is what the file says.
    spec = CampaignLoader(templates_dir, root=campaigns_dir.parent).load_file(file.path)
    outcome = sync_campaign(session, spec, now)
    return SaveResult(file.path, outcome, written)


def index_of(path: str) -> list[int]:
    """``steps[3].links[1].url`` -> ``[3, 1]`` (for templates that group errors per row)."""
    return [int(i) for i in _INDEX.findall(path)]


def field_names(values: Mapping[str, Any], extra_rows: int = 1) -> list[str]:
    """Every field (and group) the editor form shows for ``form_values`` output, plus the
    blank rows it offers for a new topic, step or link."""
    names = ["", "slug", "name", "description", "cadence", "max_touches", "send_window", "send_window.start",
             "send_window.end", "send_window.weekdays_only", "handoff", "handoff.engagement_at_least",
             "handoff.fit_at_least", "handoff.hand_raiser", "topics", "steps", "exit"]
    for i in range(len(values["topics"]) + extra_rows):
        names += [f"topics[{i}]", *(f"topics[{i}].{k}" for k in ("slug", "name", "stage"))]
    for i, step in enumerate([*values["steps"], *([None] * extra_rows)]):
        p = f"steps[{i}]"
        names += [p, *(f"{p}.{k}" for k in (*STEP_FIELDS, "teaches", "requires", "stage", "links", "alternate"))]
        names += [f"{p}.alternate.{k}" for k in (*ALTERNATE_FIELDS, "links")]
        for j in range(len(step["links"]) if step else 0):
            names += [f"{p}.links[{j}]", *(f"{p}.links[{j}].{k}" for k in (*LINK_FIELDS, "hand_raiser"))]
        j = len(step["links"]) if step else 0
        names += [f"{p}.links[{j}]", *(f"{p}.links[{j}].{k}" for k in (*LINK_FIELDS, "hand_raiser"))]
    return names
