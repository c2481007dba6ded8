"""A step's templates as the template editor holds them: previewed, checked, saved, sent as a test.

A draft goes through the very pipeline a real email does: the layout is flattened, CSS inlined
with premailer, the result rendered in the sandbox (``render.py``), and the email built by the
normal ``Composer``. Only the source differs (the editor's text instead of the files), and a
test email differs from a real one in three ways: its subject starts with ``[TEST]``, it carries
``X-Nurture-Test: 1``, and its links are the plain URLs (no tracking token, no open pixel), with
no Delivery row, so nothing about it is ever counted in a report, a score or a lead's knowledge.
"""
from __future__ import annotations

import os
import secrets
import tempfile
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    DictLoader,
    Environment,
    FileSystemLoader,
    TemplateError,
    TemplateSyntaxError,
)
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEnvironment

from ..campaigns.loader import LINK_CALL
from ..config import Config
from ..exceptions import InvalidInput
from .compose import Composer
from .mime import OutgoingEmail, build_message
from .render import CompiledEmail, Renderer, _PersonalizationPreservingLoader, inline_css

__all__ = ["DraftProblem", "DraftRender", "DraftStep", "check_draft", "render_draft", "save_draft",
           "send_test_email", "TEST_HEADER", "TEST_PREFIX"]

TEST_PREFIX = "[TEST] "
TEST_HEADER = ("X-Nurture-Test", "1")
#: Message-ID numbers of test emails, far above any real delivery id.
_TEST_ID_BASE = 10**15


@dataclass(frozen=True)
class DraftLink:
    name: str
    url: str


@dataclass(frozen=True)
class DraftStep:
    """What the composer reads of a step, with the editor's subject and template names."""

    key: str
    subject: str
    preheader: str | None
    html_template: str
    text_template: str
    links: tuple[DraftLink, ...] = ()

    @classmethod
    def of(cls, step: Any, subject: str | None = None) -> "DraftStep":
        return cls(step.key, step.subject if subject is None else subject, step.preheader, step.html_template,
                   step.text_template, tuple(DraftLink(link.name, link.url) for link in step.links))


@dataclass(frozen=True)
class DraftProblem:
    part: str  # "html", "text" or "subject"
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.part}, line {self.line}" if self.line else self.part
        return f"{where}: {self.message}"


@dataclass
class DraftRender:
    subject: str = ""
    html: str = ""
    text: str = ""
    problems: list[DraftProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class _DraftRenderer(Renderer):
    """A renderer whose step templates come from the editor; the layout still from the files."""

    def __init__(self, templates_dir: Path, sources: dict[str, str]) -> None:
        super().__init__(templates_dir)
        self.sources = sources
        self.text_sandbox = ImmutableSandboxedEnvironment(
            autoescape=False, undefined=self.text_sandbox.undefined, keep_trailing_newline=True,
            loader=ChoiceLoader([DictLoader(sources), FileSystemLoader(str(self.templates_dir))]),
        )

    def compiled(self, html_name: str, text_name: str) -> CompiledEmail:
        inner = ChoiceLoader([DictLoader(self.sources), FileSystemLoader(str(self.templates_dir))])
        loader = _PersonalizationPreservingLoader(inner)  # type: ignore[arg-type]
        flat = Environment(loader=loader, autoescape=False, keep_trailing_newline=True).get_template(html_name).render()
        return CompiledEmail(self.sandbox.from_string(inline_css(flat)), self.text_sandbox.get_template(text_name), [])


class _TestDelivery:
    """Stands where a Delivery would: only its id is read (Message-ID and bounce address)."""

    def __init__(self) -> None:
        self.id = _TEST_ID_BASE + secrets.randbelow(_TEST_ID_BASE)


def _composer(config: Config, renderer: Renderer, test: bool) -> Composer:
    return Composer(
        config, renderer,
        link_url=lambda delivery, link: link.url,  # no tracking token: a click is never recorded
        unsubscribe_url=lambda delivery: "#unsubscribe",  # a test must not unsubscribe its reader
        extra_headers=(lambda delivery: (TEST_HEADER,)) if test else None,
    )


def check_draft(html: str, text: str, subject: str, link_names: set[str]) -> list[DraftProblem]:
    """Syntax errors with their line, and ``link('…')`` names the step does not declare."""
    problems: list[DraftProblem] = []
    env = SandboxedEnvironment()
    for part, source in (("subject", subject), ("html", html), ("text", text)):
        try:
            env.parse(source)
        except TemplateSyntaxError as exc:
            problems.append(DraftProblem(part, exc.lineno if part != "subject" else None, exc.message or str(exc)))
            continue
        if part == "subject":
            continue
        for number, line in enumerate(source.splitlines(), start=1):
            for name in LINK_CALL.findall(line):
                if name not in link_names:
                    declared = ", ".join(sorted(link_names)) or "none"
                    problems.append(DraftProblem(part, number, f"link('{name}') is not a link of this step "
                                                              f"(declared: {declared})"))
    return problems


def _email(config: Config, step: DraftStep, html: str, text: str, campaign: Any, lead: Any, now: datetime,
           test: bool) -> tuple[OutgoingEmail | None, DraftRender]:
    problems = check_draft(html, text, step.subject, {link.name for link in step.links})
    if problems:
        return None, DraftRender(problems=problems)
    renderer = _DraftRenderer(config.templates_dir, {step.html_template: html, step.text_template: text})
    try:
        email = _composer(config, renderer, test).compose(_TestDelivery(), lead, step, campaign, now)
    except TemplateSyntaxError as exc:
        return None, DraftRender(problems=[DraftProblem(_part_of(exc.name, step), exc.lineno, exc.message or str(exc))])
    except (TemplateError, TypeError, ValueError, AttributeError) as exc:
        return None, DraftRender(problems=[DraftProblem("html", None, f"{type(exc).__name__}: {exc}")])
    return email, DraftRender(email.subject, email.html, email.text)


def _part_of(name: str | None, step: DraftStep) -> str:
    return "text" if name == step.text_template else "html"


def render_draft(config: Config, step: DraftStep, html: str, text: str, campaign: Any, lead: Any,
                 now: datetime) -> DraftRender:
    """Subject, inlined HTML and text of the draft for ``lead``, or the problems with their lines."""
    return _email(config, step, html, text, campaign, lead, now, test=False)[1]


def send_test_email(config: Config, step: DraftStep, html: str, text: str, campaign: Any, lead: Any, *,
                    to: str, now: datetime) -> DraftRender:
    """Compose the draft for ``lead`` and send it to ``to``, marked as a test; never recorded."""
    from .dkim import DkimSigner
    from .ratelimit import deliverability_settings
    from .transport import SMTPSettings, SMTPTransport

    test_step = DraftStep(step.key, TEST_PREFIX + step.subject, step.preheader, step.html_template,
                          step.text_template, step.links)
    email, result = _email(config, test_step, html, text, campaign, lead, now, test=True)
    if email is None:
        return result
    email = replace(email, to_addr=to, to_name="")
    data = build_message(email)
    signer = DkimSigner.from_settings(deliverability_settings(config))
    if signer is not None:
        data = signer.sign(data)
    with SMTPTransport(SMTPSettings.from_url(config.effective_smtp_url, timeout=config.smtp_timeout)) as transport:
        transport.send(email.return_path or email.from_addr, to, data)
    return result


def save_draft(templates_dir: Path, step: DraftStep, html: str, text: str) -> list[str]:
    """Write both template files (atomically, each); refuse a draft with problems."""
    problems = check_draft(html, text, step.subject, {link.name for link in step.links})
    if problems:
        raise InvalidInput("; ".join(str(p) for p in problems), "template")
    if not os.access(templates_dir, os.W_OK):
        raise InvalidInput("the templates folder is read-only here; download the files instead", "template")
    written = []
    for name, source in ((step.html_template, html), (step.text_template, text)):
        path = templates_dir / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise InvalidInput(f"template name must be relative to templates/, got {name!r}", "template")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(source.replace("\r\n", "\n"))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        written.append(f"templates/{name}")
    return written
