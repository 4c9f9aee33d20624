"""The cycle pages' learning curve as server-side SVG, built like frontend/charts.py (whose helpers
it reuses): numbers are formatted here, text goes through ``format_html``, the result is marked safe
once and included with ``{{ chart }}``."""

from __future__ import annotations

import math

from django.utils.html import format_html
from django.utils.safestring import SafeString

from .charts import ACCENT, BORDER, GRID, MUTED, SURFACE, TEXT_2, _f, _is_number, _svg, _text

__all__ = ["learning_curve"]

MAX_NUMBERED_POINTS = 20  # more dots than this get no cycle number over them (tooltips only)


def _nice_step(span: float, ticks: int = 5) -> float:
    """A round tick step (1, 2 or 5 times a power of ten) giving about ``ticks`` ticks over ``span``."""
    raw = max(span, 1e-9) / ticks
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _accuracy_range(values) -> tuple[float, float]:
    """The y range: the accuracies with a margin, in tenths, inside 0..1, so that small gains show."""
    low = math.floor((min(values) - 0.02) * 10) / 10
    high = math.ceil((max(values) + 0.02) * 10) / 10
    return max(low, 0.0), min(max(high, low + 0.1), 1.0)


def _line(x1, y1, x2, y2, colour) -> SafeString:
    return format_html('<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}"/>', _f(x1), _f(y1), _f(x2), _f(y2), colour)


def learning_curve(points, *, highlight=None, title="Learning curve") -> SafeString:
    """Evaluated accuracy against the number of training labels, one dot per finished cycle joined
    in cycle order; the cycle numbered ``highlight`` is drawn larger and named.

    ``points``: ``active_learning.services.learning_curve(project)``, dicts with ``cycle``,
    ``labels`` and ``accuracy`` (0..1).
    """
    points = [p for p in points if _is_number(p.get("labels")) and _is_number(p.get("accuracy"))]
    width, height = 560.0, 260.0
    if not points:
        return _svg(width, 60, title, [_text(12, 34, "No finished cycle yet.", fill=MUTED)], "chart chart--curve")
    left, right, top, bottom = 52.0, 20.0, 18.0, 44.0
    plot_w, plot_h = width - left - right, height - top - bottom

    x_values = [p["labels"] for p in points]
    x_step = _nice_step(max(x_values) - min(x_values) or max(x_values) or 1)
    x_low = math.floor(min(x_values) / x_step) * x_step
    x_high = max(math.ceil(max(x_values) / x_step) * x_step, x_low + x_step)
    y_low, y_high = _accuracy_range([p["accuracy"] for p in points])
    y_step = 0.05 if y_high - y_low <= 0.3 else 0.1

    def x_of(v):
        return left + plot_w * (v - x_low) / (x_high - x_low)

    def y_of(v):
        return top + plot_h * (y_high - v) / (y_high - y_low)

    parts = []
    tick = y_low
    while tick <= y_high + 1e-9:
        y = y_of(tick)
        parts.append(_line(left, y, left + plot_w, y, GRID))
        parts.append(_text(left - 6, y + 4, f"{tick:.0%}", anchor="end", fill=MUTED, size=11))
        tick += y_step
    tick = x_low
    while tick <= x_high + 1e-9:
        x = x_of(tick)
        parts.append(_line(x, top + plot_h, x, top + plot_h + 4, BORDER))
        parts.append(_text(x, top + plot_h + 17, f"{tick:,.0f}", anchor="middle", fill=MUTED, size=11))
        tick += x_step
    parts.append(_line(left, top + plot_h, left + plot_w, top + plot_h, BORDER))
    parts.append(_text(left + plot_w / 2, height - 6, "training labels", anchor="middle", fill=TEXT_2, size=12))
    parts.append(
        format_html(
            '<text x="12" y="{}" transform="rotate(-90 12 {})" text-anchor="middle" fill="{}" font-size="12">{}</text>',
            _f(top + plot_h / 2),
            _f(top + plot_h / 2),
            TEXT_2,
            "accuracy",
        )
    )
    path = " ".join(f"{_f(x_of(p['labels']))},{_f(y_of(p['accuracy']))}" for p in points)
    parts.append(format_html('<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>', path, ACCENT))
    for p in points:
        x, y = x_of(p["labels"]), y_of(p["accuracy"])
        chosen = p.get("cycle") == highlight
        tip = f"cycle {p['cycle']}: {p['accuracy']:.1%} with {p['labels']:,} labels"
        parts.append(
            format_html(
                '<circle cx="{}" cy="{}" r="{}" fill="{}" stroke="{}" stroke-width="2"{}><title>{}</title></circle>',
                _f(x),
                _f(y),
                7 if chosen else 4,
                SURFACE if chosen else ACCENT,
                ACCENT,
                format_html(' data-point="{}"', p["cycle"]),
                tip,
            )
        )
        if not chosen and len(points) <= MAX_NUMBERED_POINTS:
            parts.append(_text(x, y - 9, f"{p['cycle']}", anchor="middle", fill=MUTED, size=10))
        if chosen:
            anchor = "end" if x > left + plot_w * 0.75 else "start"
            dx = -11 if anchor == "end" else 11
            name = f"cycle {p['cycle']} · {p['accuracy']:.1%}"
            parts.append(_text(x + dx, y - 9, name, anchor=anchor, size=12, weight=650))
    return _svg(width, height, title, parts, "chart chart--curve")
