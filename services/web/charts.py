"""Charts drawn on the server as SVG markup: no chart library, no JavaScript, nothing to download.

Every chart is an `<svg role="img">` named by its `<title>` and `<desc>`, which say in words what
it shows; the page's table holds the numbers themselves. Colours come as SVG presentation
attributes (the Content-Security-Policy allows no inline style), and the two lines of the rate
chart differ in dash and marker shape as well as in colour, so they can be told apart without
colour. Pure functions: the same figures always give the same markup.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

SVG_NS = "http://www.w3.org/2000/svg"
# Drawn life size in a 360 × 240 box: as wide as a 390 px phone's page, so its text stays 14–16 px
# there; narrower screens scale it down, wider ones keep it at this size (public.css).
WIDTH = 360
HEIGHT = 240
LEFT, RIGHT, TOP, BOTTOM = 46, 10, 38, 48
FONT = 16
SMALL_FONT = 14
# More month names than this would run into each other under the axis: every few are named.
MAX_AXIS_LABELS = 6
# Width of a digit in the small font, near enough, to know whether the numbers fit above the bars.
DIGIT_WIDTH = SMALL_FONT * 0.62

INK = "#1a1a1a"
MUTED = "#595959"
GRID = "#d5d5d5"
BAR = "#1f5fa8"
# (stroke, dash pattern, marker) per line: at least 4.5:1 against white, and told apart by shape too.
LINE_STYLES: tuple[tuple[str, str | None, str], ...] = (
    ("#1f5fa8", None, "circle"),
    ("#a63d00", "6 4", "square"),
)


@dataclass(frozen=True)
class Series:
    """One line of a rate chart: its name for the legend and a rate from 0 to 1 (None: not drawn)."""

    name: str
    values: Sequence[float | None]


def _num(value: float) -> str:
    """A coordinate as SVG wants it; never NaN or infinity, whatever the figures were."""
    if not math.isfinite(value):
        value = 0.0
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _count(value: float) -> str:
    """1234 rather than 1234.0 or 1.234e+03: counts are read as whole numbers."""
    return str(int(value)) if value.is_integer() else f"{value:.1f}"


def _attr(value: str) -> str:
    return escape(value, quote=True)


def nice_top(largest: float) -> int:
    """The top of a count axis: a round number at or above the largest bar, even so its half is whole."""
    if not math.isfinite(largest) or largest <= 2:
        return 2
    magnitude = 10 ** math.floor(math.log10(largest))
    for step in (1, 2, 4, 6, 8, 10):
        if step * magnitude >= largest:
            return int(step * magnitude)
    return int(10 * magnitude)  # unreachable: 10 × magnitude always exceeds `largest`


def _open(chart_id: str, title: str, description: str) -> list[str]:
    ident = _attr(chart_id)
    return [
        f'<svg xmlns="{SVG_NS}" class="pub-chart-svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{ident}-title {ident}-desc" focusable="false">',
        f'<title id="{ident}-title">{escape(title)}</title>',
        f'<desc id="{ident}-desc">{escape(description)}</desc>',
    ]


def _plot() -> tuple[float, float, float, float]:
    """(left, top, width, height) of the area inside the axes."""
    return LEFT, TOP, WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM


def _slot_centre(index: int, count: int) -> float:
    left, _, width, _ = _plot()
    return left + width * (index + 0.5) / count


def _y(fraction: float) -> float:
    """The height on the drawing of a point `fraction` of the way up the axis."""
    _, top, _, height = _plot()
    return top + height * (1.0 - max(0.0, min(1.0, fraction)))


def _gridlines(ticks: Sequence[tuple[float, str]]) -> list[str]:
    left, _, width, _ = _plot()
    parts = []
    for fraction, text in ticks:
        y = _num(_y(fraction))
        parts.append(f'<line x1="{_num(left)}" y1="{y}" x2="{_num(left + width)}" y2="{y}" '
                     f'stroke="{GRID if fraction else MUTED}" stroke-width="1"/>')
        parts.append(f'<text x="{_num(left - 6)}" y="{y}" dy="0.35em" text-anchor="end" font-size="{SMALL_FONT}" '
                     f'fill="{MUTED}">{escape(text)}</text>')
    return parts


def _axis_labels(labels: Sequence[str], groups: Sequence[str] | None) -> list[str]:
    """Every few labels under the axis, and the group (the year) under the first and at each change."""
    count = len(labels)
    if not count:
        return []
    step = math.ceil(count / MAX_AXIS_LABELS)
    _, top, _, height = _plot()
    baseline = top + height
    parts = []
    shown_group = None
    for index in range(0, count, step):
        x = _num(_slot_centre(index, count))
        parts.append(f'<text x="{x}" y="{_num(baseline + 20)}" text-anchor="middle" font-size="{FONT}" '
                     f'fill="{INK}">{escape(labels[index])}</text>')
        group = groups[index] if groups is not None and index < len(groups) else None
        if group and group != shown_group:
            parts.append(f'<text x="{x}" y="{_num(baseline + 40)}" text-anchor="middle" font-size="{SMALL_FONT}" '
                         f'fill="{MUTED}">{escape(group)}</text>')
            shown_group = group
    return parts


def _tip(labels: Sequence[str], groups: Sequence[str] | None, index: int) -> str:
    group = groups[index] if groups is not None and index < len(groups) else ""
    return f"{group}{labels[index]}"


def bar_chart(chart_id: str, labels: Sequence[str], values: Sequence[int | float], *, title: str,
              description: str, groups: Sequence[str] | None = None, unit: str = "件") -> Markup:
    """One bar for each value, heights in proportion to the values on an axis from zero."""
    if len(labels) != len(values):
        raise ValueError("bar_chart needs one label for each value")
    count = len(values)
    top = nice_top(max((float(v) for v in values), default=0.0))
    left, _, width, _ = _plot()
    parts = _open(chart_id, title, description)
    parts += _gridlines([(0.0, "0"), (0.5, f"{top // 2}"), (1.0, f"{top}")])
    slot = width / count if count else width
    bar_width = slot * 0.6
    # Numbers above the bars only where they fit side by side; the page's table has them all.
    widest = max((len(_count(float(v) if math.isfinite(float(v)) else 0.0)) for v in values), default=0)
    label_bars = slot >= widest * DIGIT_WIDTH + 4
    for index, raw in enumerate(values):
        value = float(raw) if math.isfinite(float(raw)) else 0.0
        x = left + slot * index + (slot - bar_width) / 2
        y = _y(value / top)
        height = _y(0.0) - y
        tip = f"{_tip(labels, groups, index)}：{_count(value)} {unit}"
        parts.append(f'<rect class="pub-bar" x="{_num(x)}" y="{_num(y)}" width="{_num(bar_width)}" '
                     f'height="{_num(height)}" fill="{BAR}"><title>{escape(tip)}</title></rect>')
        if label_bars:
            parts.append(f'<text x="{_num(x + bar_width / 2)}" y="{_num(y - 4)}" text-anchor="middle" '
                         f'font-size="{SMALL_FONT}" fill="{INK}">{_count(value)}</text>')
    parts += _axis_labels(labels, groups)
    parts.append("</svg>")
    return Markup("".join(parts))


def _marker(shape: str, x: float, y: float, colour: str, tip: str, kind: str = "pub-point") -> str:
    title = f"<title>{escape(tip)}</title>"
    if shape == "square":
        return (f'<rect class="{kind}" x="{_num(x - 4)}" y="{_num(y - 4)}" width="8" height="8" '
                f'fill="{colour}">{title}</rect>')
    return f'<circle class="{kind}" cx="{_num(x)}" cy="{_num(y)}" r="4.5" fill="{colour}">{title}</circle>'


def _runs(values: Sequence[float | None]) -> list[list[int]]:
    """Indexes of the values grouped into unbroken stretches: a missing month breaks the line."""
    runs: list[list[int]] = []
    current: list[int] = []
    for index, value in enumerate(values):
        if value is None or not math.isfinite(value):
            if current:
                runs.append(current)
            current = []
        else:
            current.append(index)
    if current:
        runs.append(current)
    return runs


def _legend(series: Sequence[Series]) -> list[str]:
    parts = []
    for index, line in enumerate(series):
        colour, dash, shape = LINE_STYLES[index % len(LINE_STYLES)]
        x = 6 + index * (WIDTH - 6) / max(1, len(series))
        dashing = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(f'<line x1="{_num(x)}" y1="14" x2="{_num(x + 24)}" y2="14" stroke="{colour}" '
                     f'stroke-width="2.5"{dashing}/>')
        parts.append(_marker(shape, x + 12, 14, colour, line.name, kind="pub-key"))
        parts.append(f'<text x="{_num(x + 30)}" y="14" dy="0.35em" font-size="{SMALL_FONT}" fill="{INK}">'
                     f'{escape(line.name)}</text>')
    return parts


def rate_chart(chart_id: str, labels: Sequence[str], series: Sequence[Series], *, title: str,
               description: str, groups: Sequence[str] | None = None) -> Markup:
    """Lines of rates from 0 to 100 %, one point a month; a month without a rate is a gap."""
    count = len(labels)
    if any(len(line.values) != count for line in series):
        raise ValueError("rate_chart needs one value a label in every series")
    parts = _open(chart_id, title, description)
    parts += _gridlines([(0.0, "0%"), (0.5, "50%"), (1.0, "100%")])
    parts += _legend(series)
    for index, line in enumerate(series):
        colour, dash, shape = LINE_STYLES[index % len(LINE_STYLES)]
        dashing = f' stroke-dasharray="{dash}"' if dash else ""
        for run in _runs(line.values):
            if len(run) < 2:
                continue
            points = " ".join(f"{_num(_slot_centre(i, count))},{_num(_y(line.values[i] or 0.0))}" for i in run)
            parts.append(f'<polyline class="pub-line" points="{points}" fill="none" stroke="{colour}" '
                         f'stroke-width="2.5"{dashing}/>')
        for run in _runs(line.values):
            for i in run:
                value = line.values[i] or 0.0
                tip = f"{_tip(labels, groups, i)} {line.name}：{value * 100:.1f}%"
                parts.append(_marker(shape, _slot_centre(i, count), _y(value), colour, tip))
    parts += _axis_labels(labels, groups)
    parts.append("</svg>")
    return Markup("".join(parts))
