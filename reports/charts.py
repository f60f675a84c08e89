"""Inline SVG charts for the dashboard, generated on the server: no JavaScript, no CDN.

Each chart carries a <title> and <desc> (role="img") for screen readers; the dashboard also shows
the same numbers in a table next to it. Colours are chosen for contrast on white (WCAG AA).
"""

from __future__ import annotations

import math
import zlib

from markupsafe import Markup, escape

INK = "#1b1b1b"
GRID = "#d0d4da"
BLUE = "#1f4e79"
ORANGE = "#b34700"
GREEN = "#1e6b3a"
RED = "#a4161a"
GREY = "#5f6670"
BAND_COLOURS = ("#6c9bd2", "#2f6fb0", "#b8860b", "#c0392b", "#7b1113")


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    text = f"{value:.1f}".replace(".", ",") if isinstance(value, float) and value != int(value) else f"{value:.0f}"
    return f"{text}{unit}"


MONTHS = ("janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.", "déc.")


def month_label(key: str) -> str:
    """'2026-03' → 'mars 26'."""
    if len(key) == 7 and key[4] == "-":
        return f"{MONTHS[int(key[5:]) - 1]} {key[2:4]}"
    return key


def _nice_step(raw: float) -> float:
    """1, 2, 5 × 10^k: round axis graduations."""
    power = 10 ** math.floor(math.log10(max(raw, 1e-9)))
    for m in (1, 2, 5, 10):
        if raw <= m * power:
            return m * power
    return 10 * power


def _svg(width: int, height: int, title: str, desc: str, body: list[str]) -> Markup:
    ident = f"c{zlib.crc32((title + desc).encode()):08x}"
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
            f'role="img" aria-labelledby="{ident}t {ident}d" class="chart" '
            f'style="max-width:{width}px;font-family:system-ui,sans-serif;font-size:12px">'
            f'<title id="{ident}t">{escape(title)}</title><desc id="{ident}d">{escape(desc)}</desc>')
    return Markup(head + "".join(body) + "</svg>")


def bullet(value: float | None, target: float, limit: float, title: str) -> Markup:
    """One horizontal bar for the median delay, against the 30-day target and the 42-day limit."""
    width, height, left, right = 460, 70, 10, 20
    top = max(limit * 1.5, (value or 0) * 1.1, 60)
    scale = (width - left - right) / top

    def x(v):
        return left + v * scale

    colour = GREEN if value is not None and value <= target else ORANGE if value is not None and value <= limit else RED
    body = [f'<rect x="{left}" y="18" width="{x(target) - left:.1f}" height="26" fill="#e3f1e8"/>',
            f'<rect x="{x(target):.1f}" y="18" width="{x(limit) - x(target):.1f}" height="26" fill="#fbeedd"/>',
            f'<rect x="{x(limit):.1f}" y="18" width="{x(top) - x(limit):.1f}" height="26" fill="#f9e0e0"/>']
    if value is not None:
        body.append(f'<rect x="{left}" y="24" width="{max(x(value) - left, 1):.1f}" height="14" fill="{colour}"/>')
    for v, label, c, anchor, dx in ((target, f"objectif {target:.0f} j", GREEN, "end", -4),
                                    (limit, f"limite légale {limit:.0f} j", RED, "start", 4)):
        body.append(f'<line x1="{x(v):.1f}" x2="{x(v):.1f}" y1="12" y2="50" stroke="{c}" stroke-width="3"/>')
        body.append(f'<text x="{x(v) + dx:.1f}" y="64" text-anchor="{anchor}" fill="{INK}">{escape(label)}</text>')
    body.append(f'<text x="{left}" y="11" fill="{INK}">0 j</text>')
    desc = (f"Délai médian {_fmt(value, ' jours')}, objectif {target:.0f} jours, limite légale {limit:.0f} jours.")
    return _svg(width, height, title, desc, body)


def line_chart(categories: list[str], series: list[tuple[str, list[float | None], str]],
               hlines: list[tuple[float, str, str]], title: str, unit: str = "j") -> Markup:
    """Lines over months, with horizontal reference lines (target, legal limit)."""
    width, height = 1080, 300
    left, right, top, bottom = 44, 34, 16, 52
    values = [v for _n, vs, _c in series for v in vs if v is not None] + [h[0] for h in hlines]
    top_value = max(values + [1]) * 1.05
    tick = _nice_step(top_value / 4)
    ticks = max(1, math.ceil(top_value / tick))
    vmax = tick * ticks
    n = max(len(categories), 1)
    step = (width - left - right) / max(n - 1, 1)

    def px(i):
        return left + i * step

    def py(v):
        return top + (height - top - bottom) * (1 - v / vmax)

    body = []
    for k in range(ticks + 1):
        v = tick * k
        body.append(f'<line x1="{left}" x2="{width - right}" y1="{py(v):.1f}" y2="{py(v):.1f}" stroke="{GRID}"/>')
        body.append(f'<text x="{left - 6}" y="{py(v) + 4:.1f}" text-anchor="end" fill="{INK}">{v:.0f}</text>')
    for v, label, colour in hlines:
        body.append(f'<line x1="{left}" x2="{width - right}" y1="{py(v):.1f}" y2="{py(v):.1f}" stroke="{colour}" '
                    f'stroke-width="2" stroke-dasharray="6 4"/>')
        body.append(f'<text x="{width - right}" y="{py(v) - 4:.1f}" text-anchor="end" fill="{colour}">'
                    f'{escape(label)}</text>')
    for i, c in enumerate(categories):
        body.append(f'<text x="{px(i):.1f}" y="{height - bottom + 16}" text-anchor="middle" fill="{INK}">'
                    f'{escape(month_label(c))}</text>')
    legend_x = left
    for name, vs, colour in series:
        points, segment = [], []
        for i, v in enumerate(vs):
            if v is None:
                if len(segment) > 1:
                    points.append(segment)
                segment = []
                continue
            segment.append(f"{px(i):.1f},{py(v):.1f}")
            body.append(f'<circle cx="{px(i):.1f}" cy="{py(v):.1f}" r="3.5" fill="{colour}">'
                        f'<title>{escape(name)} {escape(categories[i])}: {_fmt(v, " " + unit)}</title></circle>')
        if len(segment) > 1:
            points.append(segment)
        for seg in points:
            body.append(f'<polyline points="{" ".join(seg)}" fill="none" stroke="{colour}" stroke-width="2.5"/>')
        body.append(f'<rect x="{legend_x}" y="{height - 18}" width="14" height="4" fill="{colour}"/>')
        body.append(f'<text x="{legend_x + 20}" y="{height - 12}" fill="{INK}">{escape(name)}</text>')
        legend_x += 24 + 7 * len(name)
    desc = "; ".join(f"{name}: " + ", ".join(f"{c} {_fmt(v)}" for c, v in zip(categories, vs, strict=True))
                     for name, vs, _c in series)
    return _svg(width, height, title, desc, body)


def bars(items: list[tuple[str, float]], title: str, colours=None, unit: str = "") -> Markup:
    """Vertical bars with their value on top."""
    width, height = 460, 240
    left, right, top, bottom = 20, 10, 24, 40
    vmax = max([v for _l, v in items] + [1]) * 1.1
    n = max(len(items), 1)
    slot = (width - left - right) / n
    body = [f'<line x1="{left}" x2="{width - right}" y1="{height - bottom}" y2="{height - bottom}" stroke="{GREY}"/>']
    for i, (label, v) in enumerate(items):
        h = (height - top - bottom) * v / vmax
        x = left + i * slot + slot * 0.15
        colour = (colours or [BLUE] * n)[i % len(colours or [BLUE])]
        body.append(f'<rect x="{x:.1f}" y="{height - bottom - h:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" '
                    f'fill="{colour}"/>')
        body.append(f'<text x="{x + slot * 0.35:.1f}" y="{height - bottom - h - 6:.1f}" text-anchor="middle" '
                    f'fill="{INK}" font-weight="600">{_fmt(v, unit)}</text>')
        body.append(f'<text x="{x + slot * 0.35:.1f}" y="{height - bottom + 16}" text-anchor="middle" '
                    f'fill="{INK}">{escape(label)}</text>')
    desc = ", ".join(f"{label}: {_fmt(v, unit)}" for label, v in items)
    return _svg(width, height, title, desc, body)


def funnel(steps: list[tuple[str, int]], title: str) -> Markup:
    """Horizontal bars for the kiosque funnel, each with its count and share of the first step."""
    width, row = 460, 34
    height = row * len(steps) + 10
    first = steps[0][1] if steps and steps[0][1] else 0
    vmax = max([v for _l, v in steps] + [1])
    body = []
    for i, (label, v) in enumerate(steps):
        w = 250 * v / vmax
        y = 6 + i * row
        share = f" ({v / first * 100:.0f} %)" if first and i else ""
        body.append(f'<text x="0" y="{y + 18}" fill="{INK}">{escape(label)}</text>')
        body.append(f'<rect x="150" y="{y + 4}" width="{max(w, 1):.1f}" height="20" fill="{BLUE}"/>')
        body.append(f'<text x="{156 + w:.1f}" y="{y + 18}" fill="{INK}" font-weight="600">{v}{share}</text>')
    desc = ", ".join(f"{label}: {v}" for label, v in steps)
    return _svg(width, height, title, desc, body)
