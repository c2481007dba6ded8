"""Render personalized emails: CSS inlined once per template version, personalization after.

premailer costs ~5 ms an email (DESIGN §9), so it runs once per template version:

1. *flatten*: the step template and the layout it extends are merged into one source, with
   every personalization tag (``{{ … }}``, ``{% if … %}``) kept verbatim;
2. *protect*: each Jinja tag is swapped for an inert token (premailer would otherwise URL-encode
   ``href="{{ url }}"`` into ``{{%20url%20}}``), CSS is inlined, the tags are put back;
3. the result is compiled once in a sandboxed environment and cached until a file changes.

A nurture email (``render_step``) then costs only its own values: each
template of the step is rendered once per step into a slot plan (``slots.py``) and each email
fills the plan's slots. A template a plan cannot take, and every other email (previews, sales
notices, reports), costs one render of the compiled template.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from jinja2 import BaseLoader, ChainableUndefined, Environment, FileSystemLoader, Template, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .slots import Filled, SlotPlan

log = logging.getLogger(__name__)

#: Seconds between two checks that a compiled template's files are unchanged (a ``stat`` each).
FRESHNESS_CHECK = 1.0
#: Inlined CSS by flattened source, shared by every renderer of the process: a worker pool
#: inlines before it forks (``worker.py``), so no worker pays premailer (nor imports it).
_INLINED: dict[str, str] = {}
_INLINED_MAX = 256
#: Bump when ``_inline_css`` changes its output: files cached by an older one are not read.
INLINE_FORMAT = "1"
#: Types whose public ``str`` attributes templates may read without the sandbox's per-access
#: checks (``plain_view``): the composer's frozen views of a lead and of the sender.
_PLAIN_VIEWS: set[type] = set()
_MISSING = object()
#: Context names whose values are the same for every email of a step (``Composer.context``):
#: a slot plan renders them into its text; every other name is a per-email slot.
STEP_CONSTANTS = frozenset({"campaign", "step", "preheader", "sender"})


def plain_view(cls: type) -> type:
    """Class decorator: a frozen view whose public string attributes are safe to read."""
    _PLAIN_VIEWS.add(cls)
    return cls


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with a shortcut for plain views: reading a public ``str``
    attribute of one is what ``is_safe_attribute`` allows anyway (a string is no callable,
    no internal attribute, and these types are no mutable container); anything else goes
    through the sandbox's own checks. Templates read a dozen such values per email."""

    def getattr(self, obj: Any, attribute: str) -> Any | Undefined:
        if type(obj) in _PLAIN_VIEWS and attribute[:1] != "_":
            value = getattr(obj, attribute, _MISSING)
            if type(value) is str:
                return value
        return super().getattr(obj, attribute)

TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
#: Tags that build the layout; everything else is personalization and survives flattening.
STRUCTURAL = re.compile(
    r"^\{%-?\s*(extends|block|endblock|include|import|from)\b|^\{\{-?\s*super\(\)\s*-?\}\}$", re.S
)
TOKEN = "NMJTAG{:05d}X"
TOKEN_RE = re.compile(r"NMJTAG(\d{5})X")


class _PersonalizationPreservingLoader(BaseLoader):
    """Loads templates for flattening, wrapping personalization tags in ``{% raw %}``."""

    def __init__(self, inner: FileSystemLoader) -> None:
        self.inner = inner
        self.files: list[tuple[str, float]] = []

    def get_source(self, environment, template):
        source, filename, uptodate = self.inner.get_source(environment, template)
        if filename:
            self.files.append((filename, os.path.getmtime(filename)))

        def wrap(match: re.Match) -> str:
            tag = match.group(0)
            if tag.startswith("{#"):
                return ""
            if STRUCTURAL.match(tag):
                return tag
            return "{% raw %}" + tag + "{% endraw %}"

        return TAG.sub(wrap, source), filename, uptodate


@dataclass
class CompiledEmail:
    html: Template
    text: Template
    files: list[tuple[str, float]]
    checked_at: float = 0.0
    #: The sources the two were compiled from, one file each (layout merged in): what slot
    #: plans are made of. None: no plans, every email is rendered in full.
    html_source: str | None = None
    text_source: str | None = None
    #: (step key, subject, context names) -> the step's plans (subject, HTML, text; None each
    #: where a template cannot be planned). Dropped with this entry when a file changes.
    plans: dict[Hashable, tuple[SlotPlan | None, SlotPlan | None, SlotPlan | None]] = field(default_factory=dict)

    def is_current(self) -> bool:
        """Its files unchanged (checked at most once a second: four ``stat`` calls an email added up)."""
        now = time.monotonic()
        if now - self.checked_at < FRESHNESS_CHECK:
            return True
        try:
            current = all(os.path.getmtime(name) == mtime for name, mtime in self.files)
        except OSError:
            return False
        if current:
            self.checked_at = now
        return current


class Renderer:
    """Compiles and caches step templates; renders subjects and bodies for one lead."""

    def __init__(self, templates_dir: Path, cache_dir: Path | None = None) -> None:
        self.templates_dir = Path(templates_dir)
        #: Where inlined sources are kept between processes (None: in memory only).
        self.cache_dir = cache_dir
        self.sandbox: ImmutableSandboxedEnvironment = _Sandbox(autoescape=True, undefined=ChainableUndefined)
        self.text_sandbox: ImmutableSandboxedEnvironment = _Sandbox(
            autoescape=False, undefined=ChainableUndefined,
            loader=FileSystemLoader(str(self.templates_dir)), keep_trailing_newline=True,
        )
        self._cache: dict[tuple[str, str], CompiledEmail] = {}
        self._subjects: dict[str, Template] = {}
        self._lock = threading.Lock()
        self.inline_count = 0

    # -- compile --------------------------------------------------------------------------

    def compiled(self, html_name: str, text_name: str) -> CompiledEmail:
        key = (html_name, text_name)
        entry = self._cache.get(key)
        if entry is not None and entry.is_current():
            return entry
        with self._lock:
            entry = self._compile(html_name, text_name)
            self._cache[key] = entry
            return entry

    def _compile(self, html_name: str, text_name: str) -> CompiledEmail:
        loader = _PersonalizationPreservingLoader(FileSystemLoader(str(self.templates_dir)))
        flattener = Environment(loader=loader, autoescape=False, keep_trailing_newline=True)
        flat = flattener.get_template(html_name).render()
        inlined = inline_css(flat, self.cache_dir)
        self.inline_count += 1
        html = self.sandbox.from_string(inlined)
        # Text bodies need no inlining: they use ordinary inheritance, compiled once here. The
        # flattened text is what its slot plan is made of (checked against this template).
        text = self.text_sandbox.get_template(text_name)
        flat_text = flattener.get_template(text_name).render()
        text_file = self.templates_dir / text_name
        files = loader.files + [(str(text_file), os.path.getmtime(text_file))]
        return CompiledEmail(html, text, files, html_source=inlined, text_source=flat_text)

    def subject(self, source: str) -> Template:
        template = self._subjects.get(source)
        if template is None:
            template = _Sandbox(autoescape=False, undefined=ChainableUndefined).from_string(source)
            self._subjects[source] = template
        return template

    # -- render ---------------------------------------------------------------------------

    def render(self, html_name: str, text_name: str, subject: str, context: dict[str, Any]) -> tuple[str, str, str]:
        """Subject, HTML and text for one lead."""
        compiled = self.compiled(html_name, text_name)
        # No tag can start without a brace: such a subject is its own rendering, no Jinja context.
        rendered = render_template(self.subject(subject), context) if "{" in subject else subject
        return " ".join(rendered.split()), render_template(compiled.html, context), render_template(compiled.text, context)

    def render_step(self, html_name: str, text_name: str, subject: str, context: dict[str, Any],
                    step_key: Hashable) -> StepEmail:
        """One nurture email, filled into its step's slot plans where it can be.

        ``step_key`` names the values of :data:`STEP_CONSTANTS` in ``context``: equal keys must
        mean equal values. The bodies come quoted-printable too where the plans made them.
        """
        compiled = self.compiled(html_name, text_name)
        if compiled.html_source is None:
            return StepEmail(*self.render(html_name, text_name, subject, context))
        key = (step_key, subject, frozenset(context))
        plans = compiled.plans.get(key)
        if plans is None:
            constants = {name: context[name] for name in STEP_CONSTANTS if name in context}
            per_email = set(context) - STEP_CONSTANTS
            with self._lock:
                plans = compiled.plans[key] = (
                    SlotPlan.build(self.subject(subject).environment, subject, constants, per_email, render_template)
                    if "{" in subject else None,
                    SlotPlan.build(self.sandbox, compiled.html_source, constants, per_email, render_template),
                    SlotPlan.build(self.text_sandbox, compiled.text_source or "", constants, per_email,
                                   render_template),
                )
        subject_plan, html_plan, text_plan = plans
        memo: dict[Hashable, Any] = {}  # what the three plans share: evaluated once
        rendered_subject = subject if "{" not in subject else _filled(
            subject_plan, context, memo, lambda: render_template(self.subject(subject), context), body=False).text
        html = _filled(html_plan, context, memo, lambda: render_template(compiled.html, context))
        text = _filled(text_plan, context, memo, lambda: render_template(compiled.text, context))
        return StepEmail(" ".join(rendered_subject.split()), html.text, text.text, html.quoted_printable,
                         text.quoted_printable)


class StepEmail(NamedTuple):
    subject: str
    html: str
    text: str
    #: The bodies quoted-printable (``mime.OutgoingEmail.html_qp``/``text_qp``), where plans made them.
    html_qp: bytes | None = None
    text_qp: bytes | None = None


def _filled(plan: SlotPlan | None, context: dict[str, Any], memo: dict[Hashable, Any],
            full: Callable[[], str], body: bool = True) -> Filled:
    """The plan's text for this email, or the full render where the step has no plan."""
    if plan is None:
        return Filled(full(), None)
    return plan.fill(context, full, memo, body)


#: Each template's globals (a ``ChainMap`` of its own over its environment's) as one plain dict.
_FLAT_GLOBALS: weakref.WeakKeyDictionary[Template, dict[str, Any]] = weakref.WeakKeyDictionary()


def render_template(template: Template, context: dict[str, Any]) -> str:
    """``template.render(context)``, the same context and output, at a third less of its fixed cost.

    Jinja builds each render's context from ``dict(template.globals, **context)``, and iterating
    that ``ChainMap`` (twice: for the parent and for ``globals_keys``) cost 4 µs of the 6.5 µs a
    context takes, three times an email. Here it is flattened once per template: the renderer's
    environments are given no globals after they are made. The sandbox is untouched: its checks
    live in the environment the compiled template calls, not in the context.
    """
    flat = _FLAT_GLOBALS.get(template)
    if flat is None:
        flat = _FLAT_GLOBALS[template] = dict(template.globals)
    environment = template.environment
    ctx = environment.context_class(environment, {**flat, **context}, template.name, template.blocks, globals=flat)
    try:
        return environment.concat(template.root_render_func(ctx))
    except Exception:
        environment.handle_exception()


def inline_css(html: str, cache_dir: Path | None = None) -> str:
    """Inline CSS into a template source whose Jinja tags must come out intact.

    The result is kept in memory for the process and, given ``cache_dir``, in a file named by
    a hash of the source and of premailer's version: a worker started again, or a second
    worker, reads it instead of running (and importing) premailer.
    """
    inlined = _INLINED.get(html)
    if inlined is None:
        inlined = _read_or_inline(html, cache_dir)
        if len(_INLINED) >= _INLINED_MAX:
            _INLINED.clear()
        _INLINED[html] = inlined
    return inlined


def _read_or_inline(html: str, cache_dir: Path | None) -> str:
    if cache_dir is None:
        return _inline_css(html)
    from importlib.metadata import version

    key = hashlib.sha256(f"{INLINE_FORMAT}|{version('premailer')}|{html}".encode()).hexdigest()
    path = cache_dir / f"{key}.html"
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        pass
    inlined = _inline_css(html)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(inlined, encoding="utf-8")
        os.replace(partial, path)  # whole or absent: another process may read it at once
    except OSError as exc:  # a read-only instance folder costs premailer at each start, nothing more
        log.warning("inlined template not cached in %s: %s", cache_dir, exc)
    return inlined


def _inline_css(html: str) -> str:
    from premailer import Premailer  # here: a worker whose templates were inlined never imports it

    tags: list[str] = []

    def protect(match: re.Match) -> str:
        tags.append(match.group(0))
        return TOKEN.format(len(tags) - 1)

    protected = TAG.sub(protect, html)
    inlined = Premailer(
        protected,
        keep_style_tags=False,  # media queries and pseudo-classes are kept as leftover <style>
        remove_classes=False,
        strip_important=False,
        disable_validation=True,
        allow_network=False,
        cssutils_logging_level=logging.CRITICAL,
    ).transform()
    restored = TOKEN_RE.sub(lambda m: tags[int(m.group(1))], inlined)
    missing = len(tags) - len(set(int(i) for i in TOKEN_RE.findall(inlined)))
    if missing:
        log.warning("%d template tags were dropped while inlining CSS", missing)
    return restored


def link_function(urls: dict[str, str]) -> Callable[[str], str]:
    """``link('name')`` in templates; an undeclared name renders an empty URL, never a crash."""

    def link(name: str) -> str:
        return urls.get(name, "")

    return link
