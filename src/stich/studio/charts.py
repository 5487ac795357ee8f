"""Server-side SVG charts for the Studio: no JavaScript, no network, numbers kept readable.

Every plotted point carries its number in ``data-value`` and a ``<title>`` tooltip, and
each chart is followed by a ``<table>`` of the same numbers (folded in a ``<details>``),
for screen readers and for tests that compare what is drawn with what the services say.
Every label is escaped; the colours are tabler's (the look sqladmin gives the Studio).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Literal

from markupsafe import Markup, escape

# tabler's blue, green, orange, purple, red, cyan
PALETTE = ("#206bc4", "#2fb344", "#f76707", "#ae3ec9", "#d63939", "#17a2b8")
_GRID = "#e6e7e9"
_MUTED = "#667382"
_FONT = 'font-family="inherit" font-size="11"'

_WIDTH = 640
_HEIGHT = 200
_LEFT, _RIGHT, _TOP, _BOTTOM = 44, 12, 12, 26


def daily_chart(
    title: str,
    days: Sequence[date],
    series: Mapping[str, Sequence[int]],
    *,
    key: str | None = None,
    kind: Literal["line", "bar"] = "line",
) -> Markup:
    """A chart of one or more per-day series over ``days`` (oldest first): lines, or
    columns side by side (``kind="bar"``, clearer for small counts such as sign-ups).

    ``key`` names the chart in ``data-chart`` (defaults to the title) for tests and links.
    """
    for name, values in series.items():
        if len(values) != len(days):
            raise ValueError(f"series {name!r} has {len(values)} values for {len(days)} days")
    top = _nice_ceiling(max((v for values in series.values() for v in values), default=0))
    plot = _Plot(len(days), top, bars=kind == "bar")
    parts = [_svg_open(title, _WIDTH, _HEIGHT)]
    for tick in sorted({0, top // 2, top}):
        ty = plot.y(tick)
        parts.append(
            f'<line x1="{_LEFT}" x2="{_WIDTH - _RIGHT}" y1="{ty:.1f}" y2="{ty:.1f}" '
            f'stroke="{_GRID}"/>'
            f'<text x="{_LEFT - 6}" y="{ty + 4:.1f}" text-anchor="end" fill="{_MUTED}" '
            f"{_FONT}>{_compact(tick)}</text>"
        )
    for i in sorted({0, len(days) // 2, len(days) - 1} if days else set()):
        anchor = "start" if i == 0 else "end" if i == len(days) - 1 else "middle"
        parts.append(
            f'<text x="{plot.x(i):.1f}" y="{_HEIGHT - 8}" text-anchor="{anchor}" '
            f'fill="{_MUTED}" {_FONT}>{escape(days[i].strftime("%b %d"))}</text>'
        )
    if not days:
        parts.append(
            f'<text x="{_WIDTH / 2}" y="{_HEIGHT / 2}" text-anchor="middle" fill="{_MUTED}" '
            f"{_FONT}>No data</text>"
        )
    for n, (name, values) in enumerate(series.items()):
        colour, label = PALETTE[n % len(PALETTE)], escape(name)
        parts.append(f'<g class="chart-series" data-series="{label}">')
        if kind == "bar":
            parts.extend(plot.columns(days, values, colour, label, n, len(series)))
        else:
            parts.extend(plot.line(days, values, colour, label))
        parts.append("</g>")
    parts.append("</svg>")
    legend = "".join(
        f'<span class="me-3 text-nowrap"><span class="d-inline-block rounded me-1" '
        f'style="width:10px;height:10px;background:{PALETTE[n % len(PALETTE)]}"></span>'
        f'{escape(name)} <span class="text-muted">({sum(values):,})</span></span>'
        for n, (name, values) in enumerate(series.items())
    )
    header = ["Day", *series.keys()]
    rows = [
        [day.isoformat(), *(values[i] for values in series.values())] for i, day in enumerate(days)
    ]
    return _figure(key or title, title, "".join(parts), legend, _table(header, rows))


class _Plot:
    """Where a day and a value land in the plot area: points at the days for lines, or
    one slot per day, columns centred in it, for bars."""

    def __init__(self, count: int, top: int, *, bars: bool) -> None:
        self.count, self.top, self.bars = count, top, bars
        self.width = _WIDTH - _LEFT - _RIGHT
        self.height = _HEIGHT - _TOP - _BOTTOM
        slots = count if bars else count - 1
        self.step = self.width / max(slots, 1)

    def x(self, i: int) -> float:
        if self.bars:
            return _LEFT + (i + 0.5) * self.step
        return _LEFT + (i * self.step if self.count > 1 else self.width / 2)

    def y(self, value: int) -> float:
        return _TOP + self.height - self.height * value / self.top

    def line(
        self, days: Sequence[date], values: Sequence[int], colour: str, label: str
    ) -> list[str]:
        parts = []
        if len(values) > 1:
            points = " ".join(f"{self.x(i):.1f},{self.y(v):.1f}" for i, v in enumerate(values))
            parts.append(
                f'<polyline points="{points}" fill="none" stroke="{colour}" '
                f'stroke-width="2" stroke-linejoin="round"/>'
            )
        radius = 2.5 if len(values) <= 45 else 1.6
        for i, value in enumerate(values):
            day = days[i].isoformat()
            parts.append(
                f'<circle cx="{self.x(i):.1f}" cy="{self.y(value):.1f}" r="{radius}" '
                f'fill="{colour}" data-day="{day}" data-value="{int(value)}">'
                f"<title>{label}, {day}: {int(value)}</title></circle>"
            )
        return parts

    def columns(
        self,
        days: Sequence[date],
        values: Sequence[int],
        colour: str,
        label: str,
        index: int,
        of: int,
    ) -> list[str]:
        width = self.step * 0.8 / max(of, 1)
        parts = []
        for i, value in enumerate(values):
            day = days[i].isoformat()
            left = self.x(i) - self.step * 0.4 + index * width
            top = self.y(value)
            parts.append(
                f'<rect x="{left:.1f}" y="{top:.1f}" width="{max(width - 0.5, 0.5):.1f}" '
                f'height="{self.y(0) - top:.1f}" fill="{colour}" rx="1" '
                f'data-day="{day}" data-value="{int(value)}">'
                f"<title>{label}, {day}: {int(value)}</title></rect>"
            )
        return parts


def bar_chart(title: str, items: Sequence[tuple[str, int]], *, key: str | None = None) -> Markup:
    """Horizontal bars, one per ``(label, value)``, in the order given (e.g. referrers)."""
    chart_key = key or title
    row_h, label_w, value_w = 24, 170, 56
    height = max(len(items), 1) * row_h + 8
    top = max((value for _, value in items), default=0) or 1
    bar_space = _WIDTH - label_w - value_w
    parts = [_svg_open(title, _WIDTH, height)]
    if not items:
        parts.append(
            f'<text x="{_WIDTH / 2}" y="{height / 2 + 4}" text-anchor="middle" '
            f'fill="{_MUTED}" {_FONT}>No data</text>'
        )
    for i, (label, value) in enumerate(items):
        y = 4 + i * row_h
        width = max(bar_space * value / top, 1.0 if value else 0.0)
        text = escape(_shorten(label, 28))
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end" fill="#1d273b" '
            f"{_FONT}>{text}</text>"
            f'<rect x="{label_w}" y="{y + 3}" width="{width:.1f}" height="{row_h - 8}" rx="3" '
            f'fill="{PALETTE[0]}" data-label="{escape(label)}" data-value="{int(value)}">'
            f"<title>{escape(label)}: {int(value)}</title></rect>"
            f'<text x="{label_w + width + 6:.1f}" y="{y + 15}" fill="{_MUTED}" '
            f"{_FONT}>{int(value):,}</text>"
        )
    parts.append("</svg>")
    table = _table(["Label", "Value"], [[label, value] for label, value in items])
    return _figure(chart_key, title, "".join(parts), "", table)


def _svg_open(title: str, width: int, height: int) -> str:
    return (
        f'<svg class="stich-chart-svg w-100" viewBox="0 0 {width} {height}" role="img" '
        f'preserveAspectRatio="xMidYMid meet" style="height:auto;max-height:{height * 1.4:.0f}px" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>"
    )


def _figure(key: str, title: str, svg: str, legend: str, table: str) -> Markup:
    legend_html = f'<div class="small mt-1">{legend}</div>' if legend else ""
    # Safe: every label went through escape() above and every number through int().
    return Markup(  # noqa: S704
        f'<figure class="stich-chart mb-0" data-chart="{escape(key)}">'
        f'<figcaption class="fw-bold mb-1">{escape(title)}</figcaption>'
        f"{svg}{legend_html}"
        f'<details class="small mt-1"><summary class="text-muted">Numbers</summary>'
        f"{table}</details></figure>"
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="text-end" data-value="{c}">{c:,}</td>'
            if isinstance(c, int)
            else f"<td>{escape(c)}</td>"
            for c in row
        )
        + "</tr>"
        for row in rows
    )
    if not rows:
        body = f'<tr><td colspan="{len(header)}" class="text-muted">No data</td></tr>'
    return (
        '<table class="table table-sm table-vcenter mb-0 chart-numbers">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def _nice_ceiling(value: int) -> int:
    """The smallest 1/2/5 x 10^n at or above ``value`` (at least 1), for the y axis."""
    if value <= 1:
        return 1
    magnitude = 1
    while magnitude * 10 <= value:
        magnitude *= 10
    for factor in (1, 2, 5, 10):
        if factor * magnitude >= value:
            return factor * magnitude
    return 10 * magnitude  # pragma: no cover - the loop always returns


def _compact(value: int) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M".replace(".0M", "M")
    if value >= 1_000:
        return f"{value / 1_000:.1f}k".replace(".0k", "k")
    return str(value)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
