"""Docs that run: every curl example of docs/api.md's Endpoints, in order, against a real app.

Each example is followed in the document by the status it answers (``# → 201``); every curl
there must have one, and gets it here, on SQLite and PostgreSQL with real Redis. ``$BASE``,
``$T``, ``$LEAD``, ``$HANDOFF`` and ``$HANDOFF2`` are what the document says they are.
"""
from __future__ import annotations

import io
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from nurture_mail.models import Campaign, Lead
from nurture_mail.sales.decision import HandoffDecision
from nurture_mail.sales.handoff import start_handoff

from .conftest import ApiPlatform

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
_BLOCK = re.compile(r"```sh\n(.*?)```", re.DOTALL)
_STATUS = re.compile(r"^#\s*→\s*(\d{3})\b")


@dataclass
class Example:
    command: str
    status: int
    line: int
    method: str = "GET"
    url: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    form: dict[str, str] = field(default_factory=dict)


def examples() -> list[Example]:
    """The curl commands of the Endpoints section with the status written after each."""
    text = DOC.read_text(encoding="utf-8")
    start = text.index("## Endpoints")
    end = text.index("\n## ", start + 1)
    found: list[Example] = []
    for block in _BLOCK.finditer(text, start, end):
        first_line = text.count("\n", 0, block.start()) + 2
        lines = block.group(1).splitlines()
        i = 0
        while i < len(lines):
            if not lines[i].startswith("curl "):
                i += 1
                continue
            at = first_line + i
            command = lines[i]
            while command.endswith("\\") or not _complete(command):  # continued, or inside a quote
                i += 1
                command = (command[:-1] if command.endswith("\\") else command) + "\n" + lines[i]
            i += 1
            status = _STATUS.match(lines[i]) if i < len(lines) else None
            assert status, f"docs/api.md line {at}: a curl example without its status (# → NNN) after it"
            found.append(parse(command, int(status.group(1)), at))
    return found


def _complete(command: str) -> bool:
    try:
        shlex.split(command)
    except ValueError:  # no closing quotation
        return False
    return True


def parse(command: str, status: int, line: int) -> Example:
    example = Example(command, status, line)
    args = shlex.split(command)[1:]
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "-X":
            example.method, i = args[i + 1], i + 2
        elif arg == "-H":
            name, _, value = args[i + 1].partition(":")
            example.headers[name.strip()] = value.strip()
            i += 2
        elif arg == "-d":
            example.body = args[i + 1]
            example.method = example.method if example.method != "GET" else "POST"
            i += 2
        elif arg == "-F":
            name, _, value = args[i + 1].partition("=")
            example.form[name] = value
            example.method = example.method if example.method != "GET" else "POST"
            i += 2
        elif arg.startswith("-"):
            raise AssertionError(f"docs/api.md line {line}: curl option {arg} is not understood by this test")
        else:
            example.url, i = arg, i + 1
    assert example.url, f"docs/api.md line {line}: no URL"
    return example


def expand(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\$(\w+)", lambda m: values[m.group(1)], text)


def open_handoff(api: ApiPlatform, email: str) -> int:
    with api.svc.db.session() as session:
        lead_id = session.scalar(select(Lead.id).where(Lead.email == email))
        campaign_id = session.scalar(select(Campaign.id).where(Campaign.slug == "northwind-security"))
        decision = HandoffDecision(lead_id, campaign_id, "score", "docs example", None, api.clock.now())
        return start_handoff(api.svc, session, decision, api.clock.now()).id


def test_every_api_example_of_the_docs_answers_its_documented_status(api: ApiPlatform, tmp_path) -> None:
    found = examples()
    assert len(found) >= 10
    (tmp_path / "booth-scans.csv").write_text("E-Mail,Firma\nli.wei@example.com,Acme\n", encoding="utf-8")
    values = {"BASE": "", "T": api.tokens["admin"]}
    for example in found:
        if "/handoffs/$HANDOFF" in example.url and "HANDOFF" not in values:
            values["HANDOFF"] = str(open_handoff(api, "ana.lima@example.com"))
            api.add_lead("ben.okafor@example.com")
            values["HANDOFF2"] = str(open_handoff(api, "ben.okafor@example.com"))
        kwargs: dict = {"headers": {k: expand(v, values) for k, v in example.headers.items()}}
        if example.body is not None:
            json.loads(example.body)  # the example's body is valid JSON
            kwargs["data"] = example.body
        if example.form:
            data = {}
            for name, value in example.form.items():
                if value.startswith("@"):
                    data[name] = (io.BytesIO((tmp_path / value[1:]).read_bytes()), value[1:])
                else:
                    data[name] = value
            kwargs["data"] = data
            kwargs["content_type"] = "multipart/form-data"
        response = api.client.open(expand(example.url, values), method=example.method, **kwargs)
        assert response.status_code == example.status, (
            f"docs/api.md line {example.line}: {example.command}\n→ {response.status_code}, "
            f"documented {example.status}: {response.get_data(as_text=True)[:500]}")
        if example.method == "POST" and example.url.endswith("/api/v1/leads") and "LEAD" not in values:
            values["LEAD"] = str(response.get_json()["id"])
