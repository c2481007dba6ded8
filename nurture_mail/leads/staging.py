"""An uploaded CSV waiting for the marketer to check its reading before it is imported.

The web UI stages the file (``instance/imports/staged/<token>.csv``), shows what ``csvfile``
detected (encoding, delimiter, each column's field, sample values), lets the mapping be
changed, and only then creates the import job (``imports.create_import``) from the same bytes.
A staged file is deleted when its import is created, or by ``discard_stale`` after a day.
"""
from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..exceptions import NotFound
from .csvfile import parse
from .fields import CUSTOM_PREFIX, IGNORE, TARGET_FIELDS

__all__ = ["FilePreview", "discard", "discard_stale", "load_staged", "preview_file", "stage_upload", "target_choices"]

_TOKEN = re.compile(r"^[0-9a-f]{32}$")
SAMPLE_ROWS = 5
STALE_SECONDS = 86400
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}


def _folder(instance_path: Path) -> Path:
    return Path(instance_path) / "imports" / "staged"


def stage_upload(instance_path: Path, filename: str, data: bytes, options: dict[str, Any]) -> str:
    """Check the file can be read (``ImportOptionsError`` naming the problem), store it, return its token."""
    parse(data)
    token = secrets.token_hex(16)
    folder = _folder(instance_path)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{token}.csv").write_bytes(data)
    (folder / f"{token}.json").write_text(json.dumps({"filename": Path(filename or "upload.csv").name[:300],
                                                      "options": options}), encoding="utf-8")
    discard_stale(instance_path)
    return token


def load_staged(instance_path: Path, token: str) -> tuple[str, bytes, dict[str, Any]]:
    """(filename, bytes, options) of a staged upload; NotFound for an unknown or expired token."""
    folder = _folder(instance_path)
    if not _TOKEN.match(token or "") or not (folder / f"{token}.csv").is_file():
        raise NotFound("this upload is no longer waiting (imported already, or older than a day)")
    meta = json.loads((folder / f"{token}.json").read_text(encoding="utf-8"))
    return meta["filename"], (folder / f"{token}.csv").read_bytes(), dict(meta.get("options") or {})


def discard(instance_path: Path, token: str) -> None:
    if _TOKEN.match(token or ""):
        for suffix in (".csv", ".json"):
            (_folder(instance_path) / f"{token}{suffix}").unlink(missing_ok=True)


def discard_stale(instance_path: Path, now: float | None = None) -> None:
    folder = _folder(instance_path)
    limit = (now or time.time()) - STALE_SECONDS
    for path in folder.glob("*.*"):
        try:
            if path.stat().st_mtime < limit:
                path.unlink(missing_ok=True)
        except OSError:
            continue


@dataclass
class PreviewColumn:
    index: int
    header: str
    target: str
    samples: list[str] = field(default_factory=list)


@dataclass
class FilePreview:
    encoding: str
    delimiter: str
    rows: int
    columns: list[PreviewColumn]

    @property
    def delimiter_name(self) -> str:
        return DELIMITER_NAMES.get(self.delimiter, repr(self.delimiter))

    def mapping(self) -> dict[str, str]:
        return {c.header: c.target for c in self.columns if c.header}


def preview_file(data: bytes, mapping: dict[str, str] | None = None) -> FilePreview:
    """What the import will read: encoding, delimiter, row count, and each column's field with samples."""
    parsed = parse(data, mapping)
    columns = [PreviewColumn(c.index, c.header, c.target) for c in parsed.columns]
    for _number, cells, problem in parsed.records():
        if problem or not any(cell.strip() for cell in cells):
            continue
        for column in columns:
            if column.index < len(cells) and len(column.samples) < SAMPLE_ROWS:
                column.samples.append(cells[column.index].strip()[:80])
        if all(len(c.samples) >= SAMPLE_ROWS for c in columns):
            break
    return FilePreview(parsed.encoding, parsed.delimiter, parsed.count_rows(), columns)


def target_choices(column: PreviewColumn) -> list[tuple[str, str]]:
    """The fields a column can be mapped to: the lead's fields, its own custom field, or nothing."""
    own = column.target if column.target.startswith(CUSTOM_PREFIX) else CUSTOM_PREFIX + (
        re.sub(r"\W+", "_", column.header.strip().casefold()).strip("_") or f"column_{column.index + 1}")
    fields = [(f, f.replace("_", " ")) for f in sorted(TARGET_FIELDS)]
    return [*fields, (own, f"custom field “{own.removeprefix(CUSTOM_PREFIX)}”"), (IGNORE, "ignore this column")]
