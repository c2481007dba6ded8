"""Read ``campaigns/*.yaml`` into CampaignSpecs, reporting every error with file, path and reason."""
from __future__ import annotations

import difflib
import re
from datetime import time
from pathlib import Path
from typing import Any

from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from ..engine.plan import STAGES
from ..exceptions import CampaignDefinitionError, Problem
from ..onelinetext import control_problem
from ..scoring.rules import check_handoff_block
from ..yamlfile import YamlFileError, read_yaml
from .spec import CampaignSpec, LinkSpec, StepSpec, TopicSpec

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,79}$")
DURATION = re.compile(r"^\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*$")
CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
LINK_CALL = re.compile(r"""link\(\s*['"]([^'"]+)['"]\s*\)""")

CAMPAIGN_KEYS = {
    "slug", "name", "description", "cadence", "send_window", "max_touches", "topics", "steps",
    "exit", "handoff",
}
TOPIC_KEYS = {"slug", "name", "stage", "description"}
STEP_KEYS = {"key", "subject", "preheader", "template", "teaches", "requires", "stage", "links", "alternate"}
ALTERNATE_KEYS = {"key", "subject", "preheader", "template", "links"}
LINK_KEYS = {"name", "url", "label", "topic", "hand_raiser"}
WINDOW_KEYS = {"start", "end", "weekdays_only"}

#: Files beside the campaigns that are not campaigns (scoring rules, sales team, hygiene lists).
NOT_CAMPAIGNS = frozenset({"scoring.yaml", "sales_team.yaml", "hygiene.yaml"})

DEFAULT_CADENCE = "3d"
DEFAULT_MAX_TOUCHES = 12


def parse_duration(value: Any) -> int:
    """``3d``, ``36h``, ``2d12h``, ``90m`` or a number of seconds, as seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 3d, 36h or 90m")
    if isinstance(value, int):
        seconds = value
    else:
        match = DURATION.match(str(value)) if value is not None else None
        if not match or not any(match.groups()):
            raise ValueError(f"expected a duration like 3d, 36h or 90m, got {value!r}")
        d, h, m = (int(g or 0) for g in match.groups())
        seconds = d * 86400 + h * 3600 + m * 60
    if seconds <= 0:
        raise ValueError("must be longer than zero")
    return seconds


class _Collector:
    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(self.source, path, message))


def _suggest(word: str, choices: set[str] | list[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


class CampaignLoader:
    """Validates campaign files against the topics they declare and the templates that exist."""

    def __init__(self, templates_dir: Path, root: Path | None = None,
                 pending_templates: dict[str, str] | None = None) -> None:
        self.templates_dir = Path(templates_dir)
        self.root = root
        self._jinja = SandboxedEnvironment()
        #: ``dir/name.html`` -> source of a template file about to be written (the campaign
        #: editor's starter templates): checked as if it were on disk when the file is not.
        self.pending_templates = dict(pending_templates or {})

    # -- public -----------------------------------------------------------------------------

    def load_file(self, path: Path) -> CampaignSpec:
        """Parse and validate one file; raise CampaignDefinitionError listing every problem."""
        source = self._display(path)
        try:
            data = read_yaml(path, source)
        except YamlFileError as exc:
            raise CampaignDefinitionError([exc.problem]) from None
        return self.load_data(data, source)

    def load_data(self, data: Any, source: str) -> CampaignSpec:
        c = _Collector(source)
        spec = self._campaign(data, c)
        if c.problems or spec is None:
            raise CampaignDefinitionError(c.problems or [Problem(source, "", "empty definition")])
        return spec

    def load_dir(self, directory: Path) -> tuple[list[CampaignSpec], list[Problem]]:
        """Every ``*.yaml``/``*.yml`` in the folder; good files load even when others are bad."""
        specs: list[CampaignSpec] = []
        problems: list[Problem] = []
        files = sorted(path for path in [*Path(directory).glob("*.yaml"), *Path(directory).glob("*.yml")]
                       if path.name not in NOT_CAMPAIGNS)
        for path in files:
            try:
                specs.append(self.load_file(path))
            except CampaignDefinitionError as exc:
                problems.extend(exc.problems)
        specs, cross = check_across_files(specs)
        return specs, problems + cross

    # -- sections ---------------------------------------------------------------------------

    def _campaign(self, data: Any, c: _Collector) -> CampaignSpec | None:
        if not isinstance(data, dict):
            c.add("", "expected a mapping with slug, name, topics and steps")
            return None
        for key in sorted(set(data) - CAMPAIGN_KEYS, key=str):
            c.add(str(key), "unknown key" + _suggest(str(key), CAMPAIGN_KEYS))
        slug = self._slug(data.get("slug"), "slug", c)
        name = self._text(data.get("name"), "name", c)
        description = data.get("description")
        if description is not None and not isinstance(description, str):
            c.add("description", "expected text")
            description = None

        cadence = DEFAULT_CADENCE if data.get("cadence") is None else data["cadence"]
        try:
            cadence_seconds = parse_duration(cadence)
        except ValueError as exc:
            c.add("cadence", str(exc))
            cadence_seconds = 0

        max_touches = data.get("max_touches", DEFAULT_MAX_TOUCHES)
        if not isinstance(max_touches, int) or isinstance(max_touches, bool) or max_touches < 1:
            c.add("max_touches", f"expected a whole number of at least 1, got {max_touches!r}")
            max_touches = DEFAULT_MAX_TOUCHES

        start, end, weekdays_only = self._window(data.get("send_window"), c)
        topics = self._topics(data.get("topics"), c)
        topic_slugs = {t.slug for t in topics}
        before = len(c.problems)
        steps = self._steps(data.get("steps"), topic_slugs, {t.slug: t.stage for t in topics}, c)
        if steps and len(c.problems) == before:
            # Only on otherwise valid steps: a step dropped for another error would look
            # like a missing teacher.
            self._check_prerequisites(steps, c)
        if data.get("exit") is not None and not isinstance(data.get("exit"), dict):
            c.add("exit", "expected a mapping")
        if data.get("handoff") is not None:
            if not isinstance(data.get("handoff"), dict):
                c.add("handoff", "expected a mapping")
            else:  # thresholds and scoring overrides, checked like campaigns/scoring.yaml
                check_handoff_block(data["handoff"], "handoff", c.add)
        if c.problems:
            return None
        return CampaignSpec(
            slug=slug, name=name, source=c.source, description=description,
            cadence_seconds=cadence_seconds, window_start=start, window_end=end,
            weekdays_only=weekdays_only, max_touches=max_touches, topics=tuple(topics),
            steps=tuple(steps), exit_rules=data.get("exit") or {}, handoff_rule=data.get("handoff") or {},
        )

    def _window(self, raw: Any, c: _Collector) -> tuple[time, time, bool]:
        start, end, weekdays_only = time(9), time(17), True
        if raw is None:
            return start, end, weekdays_only
        if not isinstance(raw, dict):
            c.add("send_window", "expected a mapping with start, end and weekdays_only")
            return start, end, weekdays_only
        for key in sorted(set(raw) - WINDOW_KEYS, key=str):
            c.add(f"send_window.{key}", "unknown key" + _suggest(str(key), WINDOW_KEYS))
        parsed = {}
        for key, default in (("start", start), ("end", end)):
            value = raw.get(key)
            if value is None:
                parsed[key] = default
                continue
            if isinstance(value, bool):
                c.add(f"send_window.{key}", f"expected a time like \"09:00\", got {value!r}")
                parsed[key] = default
                continue
            if isinstance(value, int):  # YAML reads an unquoted 09:00 as sexagesimal minutes
                value = f"{value // 60:02d}:{value % 60:02d}"
            match = CLOCK.match(str(value))
            if not match:
                c.add(f"send_window.{key}", f"expected a time like \"09:00\", got {raw.get(key)!r}")
                parsed[key] = default
            else:
                parsed[key] = time(int(match.group(1)), int(match.group(2)))
        weekdays_only = raw.get("weekdays_only", True)
        if not isinstance(weekdays_only, bool):
            c.add("send_window.weekdays_only", "expected true or false")
            weekdays_only = True
        if parsed["start"] >= parsed["end"]:
            c.add("send_window", f"start {parsed['start']:%H:%M} must be before end {parsed['end']:%H:%M}")
        return parsed["start"], parsed["end"], weekdays_only

    def _topics(self, raw: Any, c: _Collector) -> list[TopicSpec]:
        if not isinstance(raw, list) or not raw:
            c.add("topics", "expected a non-empty list of topics")
            return []
        topics: list[TopicSpec] = []
        seen: set[str] = set()
        for i, item in enumerate(raw):
            path = f"topics[{i}]"
            if not isinstance(item, dict):
                c.add(path, "expected a mapping with slug, name and stage")
                continue
            for key in sorted(set(item) - TOPIC_KEYS, key=str):
                c.add(f"{path}.{key}", "unknown key" + _suggest(str(key), TOPIC_KEYS))
            slug = self._slug(item.get("slug"), f"{path}.slug", c)
            name = self._text(item.get("name"), f"{path}.name", c)
            stage = item.get("stage")
            if stage not in STAGES:
                c.add(f"{path}.stage", f"expected one of {', '.join(STAGES)}, got {stage!r}")
                continue
            if slug in seen:
                c.add(f"{path}.slug", f"duplicate topic '{slug}'")
                continue
            if slug and name:
                seen.add(slug)
                topics.append(TopicSpec(slug, name, stage, item.get("description")))
        return topics

    def _steps(self, raw: Any, topics: set[str], stages: dict[str, str], c: _Collector) -> list[StepSpec]:
        if not isinstance(raw, list) or not raw:
            c.add("steps", "expected a non-empty list of steps")
            return []
        steps: list[StepSpec] = []
        keys: set[str] = set()
        for i, item in enumerate(raw):
            path = f"steps[{i}]"
            if not isinstance(item, dict):
                c.add(path, "expected a mapping with key, subject, template and teaches")
                continue
            for key in sorted(set(item) - STEP_KEYS, key=str):
                c.add(f"{path}.{key}", "unknown key" + _suggest(str(key), STEP_KEYS))
            teaches = self._topic_list(item.get("teaches"), f"{path}.teaches", topics, c)
            requires = self._topic_list(item.get("requires"), f"{path}.requires", topics, c)
            for t in sorted(set(teaches) & set(requires)):
                c.add(f"{path}.requires", f"'{t}' is both taught and required by the same step")
            stage = item.get("stage")
            if stage is None:
                taught = [stages[t] for t in teaches if t in stages]
                stage = max(taught, key=STAGES.index) if taught else STAGES[0]
            elif stage not in STAGES:
                c.add(f"{path}.stage", f"expected one of {', '.join(STAGES)}, got {stage!r}")
                stage = STAGES[0]
            links = self._links(item.get("links"), f"{path}.links", topics, c)
            primary = self._email(item, path, links, keys, c)
            alternate_spec = None
            alt_links = links
            alt = item.get("alternate")
            if alt is not None:
                apath = f"{path}.alternate"
                if not isinstance(alt, dict):
                    c.add(apath, "expected a mapping with key, subject and template")
                else:
                    for key in sorted(set(alt) - ALTERNATE_KEYS, key=str):
                        c.add(f"{apath}.{key}", "unknown key" + _suggest(str(key), ALTERNATE_KEYS))
                    alt_links = (
                        self._links(alt.get("links"), f"{apath}.links", topics, c)
                        if alt.get("links") is not None else links
                    )
                    alternate_spec = self._email(alt, apath, alt_links, keys, c)
            if primary is None:
                continue
            key, subject, preheader, template = primary
            step = StepSpec(
                key=key, subject=subject, template=template, stage=stage, teaches=tuple(teaches),
                requires=tuple(requires), preheader=preheader, links=tuple(links),
                alternate=alternate_spec[0] if alternate_spec else None,
            )
            steps.append(step)
            if alternate_spec:
                akey, asubject, apreheader, atemplate = alternate_spec
                steps.append(StepSpec(
                    key=akey, subject=asubject, template=atemplate, stage=stage,
                    teaches=tuple(teaches), requires=tuple(requires), preheader=apreheader,
                    links=tuple(alt_links), alternate_of=key,
                ))
        return steps

    def _email(
        self, item: dict, path: str, links: list[LinkSpec], keys: set[str], c: _Collector
    ) -> tuple[str, str, str | None, str] | None:
        """Key, subject, preheader and template of a step or an alternate, all checked."""
        before = len(c.problems)
        key = self._slug(item.get("key"), f"{path}.key", c)
        if key and key in keys:
            c.add(f"{path}.key", f"duplicate step key '{key}'")
        elif key:
            keys.add(key)
        subject = self._text(item.get("subject"), f"{path}.subject", c)
        if subject:
            try:
                self._jinja.parse(subject)
            except TemplateSyntaxError as exc:
                c.add(f"{path}.subject", f"template syntax error: {exc.message}")
        preheader = item.get("preheader")
        if preheader is not None and not isinstance(preheader, str):
            c.add(f"{path}.preheader", "expected text")
        elif preheader is not None and control_problem(preheader) is not None:
            c.add(f"{path}.preheader", f"{control_problem(preheader)}: one line of text expected")
        template = self._text(item.get("template"), f"{path}.template", c)
        if template:
            self._check_templates(template, f"{path}.template", {link.name for link in links}, c)
        if len(c.problems) > before:
            return None
        return key, subject, preheader, template

    def _check_templates(self, template: str, path: str, link_names: set[str], c: _Collector) -> None:
        if template.startswith("/") or ".." in Path(template).parts:
            c.add(path, f"template name must be relative to templates/, got {template!r}")
            return
        for suffix in (".html", ".txt"):
            file = self.templates_dir / f"{template}{suffix}"
            if file.is_file():
                source = file.read_text(encoding="utf-8")
            elif f"{template}{suffix}" in self.pending_templates:
                source = self.pending_templates[f"{template}{suffix}"]
            else:
                c.add(path, f"template file not found: templates/{template}{suffix}")
                continue
            for message in self.template_problems(f"templates/{template}{suffix}", source, link_names):
                c.add(path, message)

    def template_problems(self, name: str, source: str, link_names: set[str]) -> list[str]:
        """What is wrong with one template's source: a syntax error (with its line), or a
        ``link('…')`` the step does not declare. The template editor checks drafts with it."""
        try:
            self._jinja.parse(source)
        except TemplateSyntaxError as exc:
            return [f"{name} line {exc.lineno}: {exc.message}"]
        return [f"{name} uses link('{link}'), which the step does not declare" + _suggest(link, link_names)
                for link in sorted(set(LINK_CALL.findall(source)) - link_names)]

    def _links(self, raw: Any, path: str, topics: set[str], c: _Collector) -> list[LinkSpec]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            c.add(path, "expected a list of links")
            return []
        links: list[LinkSpec] = []
        names: set[str] = set()
        for i, item in enumerate(raw):
            lpath = f"{path}[{i}]"
            if not isinstance(item, dict):
                c.add(lpath, "expected a mapping with name and url")
                continue
            for key in sorted(set(item) - LINK_KEYS, key=str):
                c.add(f"{lpath}.{key}", "unknown key" + _suggest(str(key), LINK_KEYS))
            name = self._slug(item.get("name"), f"{lpath}.name", c)
            if name in names:
                c.add(f"{lpath}.name", f"duplicate link name '{name}'")
            url = item.get("url")
            if not isinstance(url, str) or not re.match(r"^https?://[^\s/$.?#][^\s]*$", url):
                c.add(f"{lpath}.url", f"expected an absolute http(s) URL, got {url!r}")
                url = None
            topic = item.get("topic")
            if topic is not None and not isinstance(topic, str):
                c.add(f"{lpath}.topic", f"expected a topic slug, got {topic!r}")
                topic = None
            elif topic is not None and topic not in topics:
                c.add(f"{lpath}.topic", f"unknown topic '{topic}'" + _suggest(str(topic), topics))
                topic = None
            hand_raiser = item.get("hand_raiser", False)
            if not isinstance(hand_raiser, bool):
                c.add(f"{lpath}.hand_raiser", "expected true or false")
                hand_raiser = False
            label = item.get("label")
            if name and name not in names:
                # Declared even when its URL is bad, so templates using it get no second error.
                names.add(name)
                links.append(LinkSpec(name, url or "", label if isinstance(label, str) else None, topic, hand_raiser))
        return links

    def _check_prerequisites(self, steps: list[StepSpec], c: _Collector) -> None:
        """Every step must become sendable: its required topics taught by a step that can be sent.

        Walk forward from nothing known, adding what each sendable step teaches. What is never
        reached either needs a topic no step teaches (directly, or through a step that itself
        can never be sent), or sits in a prerequisite cycle.
        """
        primaries = [s for s in steps if s.alternate_of is None]
        index = {s.key: i for i, s in enumerate(primaries)}  # steps without alternates = file order
        taught_by: dict[str, set[str]] = {}
        for s in primaries:
            for t in s.teaches:
                taught_by.setdefault(t, set()).add(s.key)
        sendable = _sendable_steps(primaries)
        blocked = [s for s in primaries if s.key not in sendable]
        doomed = _doomed_steps(blocked, taught_by)
        for s in blocked:
            _report_blocked_step(s, f"steps[{index[s.key]}].requires", taught_by, doomed, c)
        cycle = [s for s in blocked if s.key not in doomed]
        if cycle:
            named = ", ".join(f"steps[{index[s.key]}] ({s.key})" for s in cycle)
            c.add("steps", f"prerequisite cycle: {named} can never be sent")

    # -- scalars ------------------------------------------------------------------------------

    def _slug(self, value: Any, path: str, c: _Collector) -> str:
        if value is None:
            c.add(path, "required")
            return ""
        if not isinstance(value, str) or not SLUG.match(value):
            c.add(path, f"expected lowercase letters, digits and dashes, got {value!r}")
            return ""
        return value

    def _text(self, value: Any, path: str, c: _Collector) -> str:
        if value is None or (isinstance(value, str) and not value.strip()):
            c.add(path, "required")
            return ""
        if not isinstance(value, str):
            c.add(path, f"expected text, got {value!r}")
            return ""
        problem = control_problem(value)
        if problem is not None:  # a name or subject with one would break the headers it reaches
            c.add(path, f"{problem}: one line of text expected")
            return ""
        return value

    def _topic_list(self, raw: Any, path: str, topics: set[str], c: _Collector) -> list[str]:
        if raw is None:
            return []
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list):
            c.add(path, "expected a list of topic slugs")
            return []
        result: list[str] = []
        for t in raw:
            if not isinstance(t, str):
                c.add(path, f"expected a topic slug, got {t!r}")
            elif t not in topics:
                c.add(path, f"unknown topic '{t}'" + _suggest(str(t), topics))
            elif t not in result:
                result.append(t)
        return result

    def _display(self, path: Path) -> str:
        path = Path(path)
        if self.root:
            try:
                return str(path.resolve().relative_to(self.root.resolve()))
            except ValueError:
                pass
        return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def check_across_files(specs: list[CampaignSpec]) -> tuple[list[CampaignSpec], list[Problem]]:
    """Campaign slugs are unique and a topic means the same stage in every file.

    Two files with the same slug are both left out, each with a problem naming the other:
    which of them is meant is not for the loader to guess, so the synced campaign stays as it is.
    """
    problems: list[Problem] = []
    sources: dict[str, list[str]] = {}
    for spec in specs:
        sources.setdefault(spec.slug, []).append(spec.source)
    stages: dict[str, tuple[str, str]] = {}
    good: list[CampaignSpec] = []
    for spec in specs:
        others = [source for source in sources[spec.slug] if source != spec.source]
        if others:
            problems.append(Problem(spec.source, "slug", f"campaign '{spec.slug}' is also defined in "
                                    f"{', '.join(others)}; neither file is synced"))
        clash = False
        for i, topic in enumerate(spec.topics):
            other = stages.get(topic.slug)
            if other and other[0] != topic.stage:
                problems.append(Problem(spec.source, f"topics[{i}].stage",
                                        f"topic '{topic.slug}' is '{other[0]}' in {other[1]}, here '{topic.stage}'"))
                clash = True
        if not clash:  # its stages stand, even when its slug is taken twice
            for topic in spec.topics:
                stages.setdefault(topic.slug, (topic.stage, spec.source))
        if not others and not clash:
            good.append(spec)
    return good, problems


def _sendable_steps(primaries: list[StepSpec]) -> set[str]:
    """Keys of the steps that become sendable, walking forward from nothing known."""
    reachable: set[str] = set()
    sendable: set[str] = set()
    changed = True
    while changed:
        changed = False
        for s in primaries:
            if s.key not in sendable and set(s.requires) <= reachable:
                sendable.add(s.key)
                reachable |= set(s.teaches)
                changed = True
    return sendable


def _doomed_steps(blocked: list[StepSpec], taught_by: dict[str, set[str]]) -> set[str]:
    """Keys of the blocked steps that need a topic nobody teaches, directly or through other doomed steps."""
    doomed = {s.key for s in blocked if any(t not in taught_by for t in s.requires)}
    changed = True
    while changed:
        changed = False
        for s in blocked:
            if s.key not in doomed and any(taught_by[t] <= doomed for t in s.requires if t in taught_by):
                doomed.add(s.key)
                changed = True
    return doomed


def _report_blocked_step(step: StepSpec, path: str, taught_by: dict[str, set[str]], doomed: set[str],
                         c: _Collector) -> None:
    missing = sorted(t for t in step.requires if t not in taught_by)
    if missing:
        c.add(path, f"step '{step.key}' requires {', '.join(repr(t) for t in missing)}, which no step teaches")
    elif step.key in doomed:
        stuck = sorted(t for t in step.requires if taught_by[t] <= doomed)
        c.add(path, f"step '{step.key}' requires {', '.join(repr(t) for t in stuck)}, taught only by "
                    f"steps that can never be sent")
