"""One-line text: what may reach an email header (names, subjects, addresses).

A C0 control character (CR, LF, NUL, tab, ESC…) or DEL in a header value fails every send that
carries it (``mail.mime`` refuses "line break in header value"), so such text is stopped where it
comes in: refused with the field named (``control_problem``), or, for free text that is shown
but never a header on its own, made one line (``free_text``).
"""
from __future__ import annotations

import re
from typing import Any

#: C0 control characters and DEL.
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: Line breaks and tabs in free text become one space; other controls go.
_FREE_SPACE = re.compile(r"[\t\n\r\x0b\x0c]+")
_NAMES = {"\x00": "NUL", "\t": "tab", "\n": "line feed", "\r": "carriage return", "\x7f": "DEL"}


def control_problem(text: str) -> str | None:
    """``'contains a control character (line feed)'`` when ``text`` has one, else None."""
    found = CONTROL.search(text)
    if found is None:
        return None
    char = found.group()
    return f"contains a control character ({_NAMES.get(char, f'U+{ord(char):04X}')})"


def free_text(value: Any) -> str:
    """Line breaks and tabs become one space, other control characters are dropped."""
    text = str(value)
    if CONTROL.search(text) is None:
        return text
    return CONTROL.sub("", _FREE_SPACE.sub(" ", text))
