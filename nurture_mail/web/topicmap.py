"""The layout of a campaign's topic map: topics in stage columns, prerequisite arrows between them.

Pure geometry for the server-rendered SVG (``campaigns/_topic_map.html``): a topic is a box in
its stage's column, in the order the campaign first teaches it; an arrow goes from a topic a
step requires to each topic that step teaches ("learn this first").
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..models import STAGE_ORDER, Stage

COLUMN_WIDTH = 300
BOX_WIDTH = 236
BOX_HEIGHT = 46
ROW_GAP = 18
TOP = 44
LEFT = 20


@dataclass
class Box:
    slug: str
    name: str
    stage: str
    x: int
    y: int
    steps: int  # how many steps teach it
    width: int = BOX_WIDTH
    height: int = BOX_HEIGHT

    @property
    def label(self) -> str:
        return self.name if len(self.name) <= 30 else self.name[:29].rstrip() + "…"

    @property
    def cy(self) -> int:
        return self.y + self.height // 2


@dataclass
class Arrow:
    source: str
    target: str
    path: str


@dataclass
class TopicMap:
    width: int
    height: int
    columns: list[tuple[str, int]] = field(default_factory=list)  # (stage, x)
    boxes: list[Box] = field(default_factory=list)
    arrows: list[Arrow] = field(default_factory=list)
    box_width: int = BOX_WIDTH


def topic_map(topics: list[tuple[str, str, str]], steps: list[tuple[list[str], list[str]]]) -> TopicMap:
    """``topics``: (slug, name, stage) in file order; ``steps``: (teaches, requires) in campaign order."""
    order: dict[str, int] = {}
    taught: dict[str, int] = {}
    for teaches, _requires in steps:
        for t in teaches:
            order.setdefault(t, len(order))
            taught[t] = taught.get(t, 0) + 1
    stages = sorted(Stage, key=lambda s: STAGE_ORDER[s])
    columns = [(stage.value, LEFT + i * COLUMN_WIDTH) for i, stage in enumerate(stages)]
    x_of = dict(columns)
    rows: dict[str, int] = {}
    boxes: dict[str, Box] = {}
    ranked = sorted(enumerate(topics), key=lambda it: (order.get(it[1][0], 10_000 + it[0])))
    for _i, (slug, name, stage) in ranked:
        row = rows.get(stage, 0)
        rows[stage] = row + 1
        boxes[slug] = Box(slug, name, stage, x_of.get(stage, LEFT), TOP + row * (BOX_HEIGHT + ROW_GAP),
                          taught.get(slug, 0))
    arrows: list[Arrow] = []
    seen: set[tuple[str, str]] = set()
    for teaches, requires in steps:
        for r in requires:
            for t in teaches:
                if (r, t) in seen or r not in boxes or t not in boxes or r == t:
                    continue
                seen.add((r, t))
                arrows.append(Arrow(r, t, _curve(boxes[r], boxes[t])))
    height = TOP + max(rows.values(), default=1) * (BOX_HEIGHT + ROW_GAP) + 10
    return TopicMap(LEFT + len(columns) * COLUMN_WIDTH - (COLUMN_WIDTH - BOX_WIDTH) + LEFT, height, columns,
                    list(boxes.values()), arrows)


def _curve(a: Box, b: Box) -> str:
    if a.x < b.x:  # left to right, between columns
        x1, y1, x2, y2 = a.x + a.width, a.cy, b.x - 4, b.cy
        dx = (x2 - x1) / 2
        return f"M{x1},{y1} C{x1 + dx},{y1} {x2 - dx},{y2} {x2},{y2}"
    if a.x > b.x:  # a later stage required by an earlier one: loop around the right-hand side
        x1, y1, x2, y2 = a.x, a.cy, b.x + b.width + 4, b.cy
        dx = (x1 - x2) / 2
        return f"M{x1},{y1} C{x1 - dx},{y1} {x2 + dx},{y2} {x2},{y2}"
    # the same column: bow out to the right
    x1, y1, x2 = a.x + a.width, a.cy, b.x + b.width + 4
    y2 = b.cy
    bow = 34 + abs(y2 - y1) // 6
    return f"M{x1},{y1} C{x1 + bow},{y1} {x2 + bow},{y2} {x2},{y2}"
