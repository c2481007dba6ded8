"""Server-rendered SVG charts: no script, no library, no CDN; they print and work offline.

Colours come from classes styled in ``web/static/sales.css`` (a strict CSP forbids inline
styles; SVG presentation attributes are used only for geometry). Every chart has a <title>
and a text alternative, and the numbers are in the table beside it.
"""
from __future__ import annotations

import math

from markupsafe import Markup, escape

from .common import Chart

__all__ = ["render_svg"]

WIDTH = 760
ROW = 26


def _fmt(value: float, unit: str) -> str:
    if unit == "pct":
        return f"{value * 100:.0f}%"
    if unit == "money":
        if value >= 1_000_000:
            return f"${value / 1_000_000:.1f}M"
        if value >= 10_000:
            return f"${value / 1000:.0f}k"
        return f"${value:,.0f}"
    return f"{value:,.0f}"


def _nice_max(value: float, unit: str = "int") -> float:
    """The top of the axis: four equal, round steps (whole numbers for counts) reaching ``value``."""
    if value <= 0:
        return 4.0
    if unit == "pct":
        return 1.0 if value <= 1 else 4 * math.ceil(value / 4 * 4) / 4
    raw = value / 4
    magnitude = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    for step in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        candidate = step * magnitude
        if unit == "int" and candidate != int(candidate):
            continue
        if candidate >= raw:
            return 4 * candidate
    return 40.0 * magnitude  # pragma: no cover


def _clip(text: str, limit: int = 22) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_svg(chart: Chart | None) -> Markup:
    if chart is None or not chart.categories:
        return Markup("")
    if not any(float(v or 0) for s in chart.series for v in s.values):
        return Markup(f'<p class="chart-empty muted">{escape(chart.title)}: nothing to draw in this range yet '
                      f'(every value is 0).</p>')
    if chart.kind in ("hbars", "funnel"):
        return _horizontal(chart)
    return _grouped(chart)


def _open(height: int, chart: Chart, desc: str) -> list[str]:
    return [f'<svg class="chart chart-{escape(chart.kind)}" viewBox="0 0 {WIDTH} {height}" role="img" '
            f'aria-labelledby="chart-title chart-desc" xmlns="http://www.w3.org/2000/svg">',
            f'<title id="chart-title">{escape(chart.title)}</title>', f'<desc id="chart-desc">{escape(desc)}</desc>']


def _horizontal(chart: Chart) -> Markup:
    series = chart.series[0]
    values = [float(v or 0) for v in series.values]
    top = max(values) if chart.unit != "pct" else max(max(values), 1.0)
    top = top or 1.0
    label_w, right = 200, 70
    bar_w = WIDTH - label_w - right
    height = 34 + ROW * len(values) + 6
    desc = "; ".join(f"{c}: {_fmt(v, chart.unit)}" for c, v in zip(chart.categories, values))
    parts = _open(height, chart, desc)
    parts.append(f'<text class="chart-heading" x="0" y="18">{escape(chart.title)}</text>')
    for i, (category, value) in enumerate(zip(chart.categories, values)):
        y = 34 + i * ROW
        width = bar_w * value / top
        x = label_w + (bar_w - width) / 2 if chart.kind == "funnel" else label_w
        parts.append(f'<text class="chart-label" x="{label_w - 8}" y="{y + 15}" text-anchor="end">'
                     f'{escape(_clip(category, 28))}</text>')
        parts.append(f'<rect class="bar {escape(series.css)}" x="{x:.1f}" y="{y}" width="{max(width, 1):.1f}" '
                     f'height="{ROW - 6}" rx="3"><title>{escape(category)}: {_fmt(value, chart.unit)}</title></rect>')
        vx = (x + width + 6) if chart.kind != "funnel" else (label_w + bar_w / 2 + width / 2 + 6)
        parts.append(f'<text class="chart-value" x="{vx:.1f}" y="{y + 15}">{_fmt(value, chart.unit)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _grouped(chart: Chart) -> Markup:
    count, groups = len(chart.series), len(chart.categories)
    slanted = len(chart.categories) > 6
    left, bottom, top_pad = 64, 96 if slanted else 54, 56
    height = 340 if slanted else 300
    plot_h = height - bottom - top_pad
    plot_w = WIDTH - left - 10
    values = [[float(v or 0) for v in s.values] for s in chart.series]
    top = _nice_max(max((v for vs in values for v in vs), default=0), chart.unit)
    slot = plot_w / max(groups, 1)
    bar = min(36.0, slot * 0.8 / max(count, 1))
    desc = "; ".join(f"{c}: " + ", ".join(f"{s.label} {_fmt(v[i], chart.unit)}" for s, v in zip(chart.series, values))
                     for i, c in enumerate(chart.categories))
    parts = _open(height, chart, desc)
    parts.append(f'<text class="chart-heading" x="0" y="18">{escape(chart.title)}</text>')
    x = left
    for j, s in enumerate(chart.series):  # legend
        lx = x + j * 170
        parts.append(f'<rect class="bar {escape(s.css)}" x="{lx}" y="26" width="12" height="12" rx="2"/>')
        parts.append(f'<text class="chart-legend" x="{lx + 18}" y="37">{escape(_clip(s.label, 24))}</text>')
    for k in range(5):  # grid and axis labels
        gv = top * k / 4
        gy = top_pad + plot_h - plot_h * k / 4
        parts.append(f'<line class="grid" x1="{left}" y1="{gy:.1f}" x2="{WIDTH - 10}" y2="{gy:.1f}"/>')
        parts.append(f'<text class="chart-axis" x="{left - 6}" y="{gy + 4:.1f}" text-anchor="end">'
                     f'{_fmt(gv, chart.unit)}</text>')
    for i, category in enumerate(chart.categories):
        gx = left + i * slot + (slot - bar * count) / 2
        for j, s in enumerate(chart.series):
            v = values[j][i]
            h = plot_h * v / top
            bx, by = gx + j * bar, top_pad + plot_h - h
            parts.append(f'<rect class="bar {escape(s.css)}" x="{bx:.1f}" y="{by:.1f}" width="{bar - 2:.1f}" '
                         f'height="{max(h, 0.5):.1f}"><title>{escape(category)} · {escape(s.label)}: '
                         f'{_fmt(v, chart.unit)}</title></rect>')
        cx = left + i * slot + slot / 2
        ly = height - bottom + 18
        if slanted:  # many categories: labels at an angle, so each keeps a readable length
            parts.append(f'<text class="chart-label" x="{cx:.1f}" y="{ly}" text-anchor="end" '
                         f'transform="rotate(-35 {cx:.1f} {ly})">{escape(_clip(category, 18))}</text>')
        else:
            parts.append(f'<text class="chart-label" x="{cx:.1f}" y="{ly}" text-anchor="middle">'
                         f'{escape(_clip(category, max(int(slot / 7), 6)))}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
