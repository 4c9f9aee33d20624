"""Server-side SVG of a model's calibration (the confusion heatmap comes from frontend.charts).

Like frontend/charts.py: every number is formatted here and every piece of text passes through
:func:`django.utils.html.format_html`; the finished string holds only those escaped parts and this
module's own markup and is marked safe once. Templates include it with ``{{ plot }}``.
"""

from __future__ import annotations

import math

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

__all__ = ["reliability_diagram"]

TEXT_2 = "#475266"
MUTED = "#6b7587"
GRID = "#eceef2"
SURFACE = "#ffffff"
ACCENT = "#2f5d8a"
ACCENT_SOFT = "#c9d9ea"
BAD = "#b4382f"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Noto Sans', 'DejaVu Sans', sans-serif"


def _f(x) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".")


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _text(x, y, text, *, anchor="start", fill=TEXT_2, size=11, rotate=False):
    transform = format_html(' transform="rotate(-90 {} {})"', _f(x), _f(y)) if rotate else ""
    return format_html(
        '<text x="{}" y="{}" text-anchor="{}" fill="{}" font-size="{}"{}>{}</text>',
        _f(x),
        _f(y),
        anchor,
        fill,
        size,
        transform,
        text,
    )


def reliability_diagram(bins: dict, *, ece=None, title="Calibration", size=320) -> SafeString:
    """Accuracy against confidence per bin: a bar per non-empty bin (its width is the bin, its
    height the share correct), a dot at the bin's mean confidence, and the diagonal a perfectly
    calibrated model would follow. Bar shade grows with the bin's share of the items.

    ``bins`` is the stored ``calibration`` block: lists ``lower``, ``upper``, ``count``,
    ``confidence``, ``accuracy`` (None for an empty bin).
    """
    left, top, right, bottom = 46.0, 30.0, 14.0, 40.0
    plot = float(size)
    width, height = left + plot + right, top + plot + bottom

    def x_of(v):
        return left + plot * min(max(float(v), 0.0), 1.0)

    def y_of(v):
        return top + plot * (1.0 - min(max(float(v), 0.0), 1.0))

    parts = [
        format_html(
            '<rect x="{}" y="{}" width="{}" height="{}" fill="{}" stroke="{}"/>',
            _f(left),
            _f(top),
            _f(plot),
            _f(plot),
            SURFACE,
            GRID,
        )
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(
            format_html(
                '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}"/>',
                _f(left),
                _f(y_of(tick)),
                _f(left + plot),
                _f(y_of(tick)),
                GRID,
            )
        )
        parts.append(_text(left - 6, y_of(tick) + 4, f"{tick:.2f}".rstrip("0").rstrip("."), anchor="end"))
        parts.append(_text(x_of(tick), top + plot + 16, f"{tick:.2f}".rstrip("0").rstrip("."), anchor="middle"))
    counts = [c if _number(c) else 0 for c in bins.get("count") or []]
    total = sum(counts) or 1
    for lower, upper, count, conf, acc in zip(
        bins.get("lower") or [],
        bins.get("upper") or [],
        counts,
        bins.get("confidence") or [],
        bins.get("accuracy") or [],
        strict=False,
    ):
        if not count or not _number(acc) or not _number(conf):
            continue
        share = count / total
        x0, x1 = x_of(lower), x_of(upper)
        tip = (
            f"confidence {lower:.1f} to {upper:.1f}: {count:,} items ({share:.0%}), "
            f"accuracy {acc:.1%}, mean confidence {conf:.1%}"
        )
        parts.append(
            format_html(
                '<rect x="{}" y="{}" width="{}" height="{}" fill="{}" fill-opacity="{}" stroke="{}">'
                "<title>{}</title></rect>",
                _f(x0 + 1),
                _f(y_of(acc)),
                _f(max(x1 - x0 - 2, 1)),
                _f(max(y_of(0) - y_of(acc), 0.5)),
                ACCENT,
                _f(0.25 + 0.65 * min(share * 3, 1.0)),
                SURFACE,
                tip,
            )
        )
        parts.append(
            format_html(
                '<circle cx="{}" cy="{}" r="3" fill="{}" stroke="{}"><title>{}</title></circle>',
                _f(x_of(conf)),
                _f(y_of(acc)),
                BAD,
                SURFACE,
                tip,
            )
        )
    parts.append(
        format_html(
            '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-dasharray="4 3"/>',
            _f(x_of(0)),
            _f(y_of(0)),
            _f(x_of(1)),
            _f(y_of(1)),
            MUTED,
        )
    )
    parts.append(_text(left + plot / 2, height - 6, "confidence (top-class probability)", anchor="middle"))
    parts.append(_text(14, top + plot / 2, "accuracy", anchor="middle", rotate=True))
    heading = title if not _number(ece) else f"{title} · ECE {ece:.3f}"
    parts.append(_text(left, 16, heading, fill=TEXT_2, size=12))
    head = format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" class="chart chart--calibration" viewBox="0 0 {} {}" width="{}" '
        'height="{}" role="img" aria-label="{}" font-family="{}">',
        _f(width),
        _f(height),
        _f(width),
        _f(height),
        heading,
        FONT,
    )
    return mark_safe(head + "".join(parts) + "</svg>")  # noqa: S308 (escaped parts, own markup only)
