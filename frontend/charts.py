"""Server-side SVG charts for Concord's pages: pure functions from numbers and names to SVG strings.

Every piece of text that comes from data (class names, versions, slice values, labeler names) is
escaped with :func:`django.utils.html.escape` / :func:`format_html` while the SVG is built; the
finished string, which holds only those escaped parts and this module's own markup, is then
marked safe once. Templates include the result with ``{{ chart }}``, never ``|safe``.

The output is well-formed XML (it parses with ``xml.etree``), uses the colours of concord.css and
carries ``role="img"`` with an ``aria-label`` plus ``<title>`` tooltips on each mark.
"""

from __future__ import annotations

import math

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

__all__ = ["grouped_bars", "heatmap", "interval_bar", "learning_curve", "reliability_diagram"]

# concord.css's palette.
TEXT = "#1d2433"
TEXT_2 = "#475266"
MUTED = "#6b7587"
BORDER = "#e2e5ea"
GRID = "#eceef2"
SURFACE = "#ffffff"
ACCENT = "#2f5d8a"
ACCENT_SOFT = "#c9d9ea"
GOOD = "#2e7d5b"
WARN = "#9a6412"
BAD = "#b4382f"
VIOLET = "#6a4fb0"
SERIES_COLOURS = (ACCENT, VIOLET, GOOD, WARN, BAD, MUTED)
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Noto Sans', 'DejaVu Sans', sans-serif"
CHAR_WIDTH = 6.6  # average glyph width at 12 px, for laying out labels


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _short(text, limit) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: max(limit - 1, 1)] + "…"


def _num(value, fmt="{:.2f}") -> str:
    return fmt.format(value) if _is_number(value) else "n/a"


def _svg(width, height, label, parts, css_class="chart") -> SafeString:
    head = format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" class="{}" viewBox="0 0 {} {}" width="{}" height="{}" '
        'role="img" aria-label="{}" font-family="{}">',
        css_class,
        _f(width),
        _f(height),
        _f(width),
        _f(height),
        label,
        FONT,
    )
    return mark_safe(head + "".join(parts) + "</svg>")  # noqa: S308 (escaped parts, own markup only)


def _f(x) -> str:
    """A coordinate: at most two decimals, no trailing zeros."""
    return f"{x:.2f}".rstrip("0").rstrip(".")


def _mix(colour, weight, base=SURFACE) -> str:
    """`weight` (0..1) of `colour` over `base`, as #rrggbb."""
    weight = min(max(weight, 0.0), 1.0)
    c = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    b = [int(base[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(bb + (cc - bb) * weight):02x}" for cc, bb in zip(c, b, strict=True))


def _luminance(hex_colour) -> float:
    r, g, b = (int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


# --------------------------------------------------------------------------------------------
# Heatmap
# --------------------------------------------------------------------------------------------


def heatmap(shares, labels, *, counts=None, title="", row_title="", col_title="") -> SafeString:
    """A square matrix as a heatmap, e.g. the inter-labeler confusion matrix.

    Diagonal cells (agreement) are shaded green by their value; off-diagonal cells (confusion)
    are shaded warm, scaled to the largest off-diagonal value so small confusions still show.
    Each cell shows its value as a percentage (when there is room) and a tooltip with the count.

    Parameters
    ----------
    shares : K x K nested lists of float or None
        Row-normalised values in [0, 1]; None for an empty row.
    labels : list of K str
        Class names, used for rows and columns (escaped).
    counts : K x K nested lists of int, optional
        Shown in the tooltips.
    """
    k = len(labels)
    if k == 0:
        return _svg(320, 40, title or "empty heatmap", [_text(10, 24, "No classes", fill=MUTED)])
    cell = max(16.0, min(46.0, 440.0 / k))
    show_values = cell >= 26
    longest = max(len(_short(name, 16)) for name in labels)
    left = 34 + min(longest, 16) * CHAR_WIDTH
    rotate = longest * CHAR_WIDTH > cell - 4
    top = 30 + (min(longest, 16) * CHAR_WIDTH * 0.75 if rotate else 18)
    width = left + cell * k + 12
    height = top + cell * k + 40
    off = [v for i, row in enumerate(shares) for j, v in enumerate(row) if i != j and _is_number(v) and v > 0]
    off_max = max(off, default=0.0)

    parts = []
    if col_title:
        parts.append(_text(left + cell * k / 2, 14, col_title, anchor="middle", fill=TEXT_2, weight=600, size=12))
    if row_title:
        parts.append(
            format_html(
                '<text x="12" y="{}" transform="rotate(-90 12 {})" text-anchor="middle" fill="{}" font-size="12" '
                'font-weight="600">{}</text>',
                _f(top + cell * k / 2),
                _f(top + cell * k / 2),
                TEXT_2,
                row_title,
            )
        )
    for j, name in enumerate(labels):
        x = left + cell * (j + 0.5)
        if rotate:
            parts.append(
                format_html(
                    '<text x="{}" y="{}" transform="rotate(-45 {} {})" fill="{}" font-size="11">{}<title>{}</title>'
                    "</text>",
                    _f(x),
                    _f(top - 6),
                    _f(x),
                    _f(top - 6),
                    TEXT_2,
                    _short(name, 16),
                    name,
                )
            )
        else:
            parts.append(_text(x, top - 7, _short(name, 16), anchor="middle", fill=TEXT_2, size=11, tip=name))
    for i, name in enumerate(labels):
        y = top + cell * (i + 0.5) + 4
        parts.append(_text(left - 7, y, _short(name, 16), anchor="end", fill=TEXT_2, size=11, tip=name))
        row = shares[i] if i < len(shares) else []
        for j in range(k):
            value = row[j] if j < len(row) else None
            x0, y0 = left + cell * j, top + cell * i
            if not _is_number(value):
                fill = "#f3f4f6"
            elif i == j:
                fill = _mix(GOOD, 0.12 + 0.88 * value)
            elif value > 0 and off_max > 0:
                fill = _mix(BAD, 0.04 + 0.86 * (value / off_max) ** 1.2)
            else:
                fill = SURFACE
            count = counts[i][j] if counts is not None else None
            tip = f"{labels[i]} → {labels[j]}: {_num(value, '{:.1%}')}" + (
                f" ({count:,} label pairs)" if isinstance(count, int) else ""
            )
            parts.append(
                format_html(
                    '<rect x="{}" y="{}" width="{}" height="{}" fill="{}" stroke="{}" stroke-width="1">'
                    "<title>{}</title></rect>",
                    _f(x0),
                    _f(y0),
                    _f(cell),
                    _f(cell),
                    fill,
                    SURFACE,
                    tip,
                )
            )
            if show_values and _is_number(value) and value >= 0.005:
                ink = SURFACE if _luminance(fill) < 0.55 else (TEXT if i == j or value >= 0.05 else MUTED)
                text = f"{value * 100:.0f}" if value >= 0.095 else f"{value * 100:.1f}"
                parts.append(_text(x0 + cell / 2, y0 + cell / 2 + 4, text, anchor="middle", fill=ink, size=11))
    legend_y = top + cell * k + 22
    parts.append(
        format_html(
            '<rect x="{}" y="{}" width="12" height="12" fill="{}"/>', _f(left), _f(legend_y - 10), _mix(GOOD, 0.8)
        )
    )
    parts.append(_text(left + 17, legend_y, "agreement (diagonal)", fill=MUTED, size=11))
    x2 = left + 17 + 20 * CHAR_WIDTH
    parts.append(
        format_html('<rect x="{}" y="{}" width="12" height="12" fill="{}"/>', _f(x2), _f(legend_y - 10), _mix(BAD, 0.8))
    )
    parts.append(_text(x2 + 17, legend_y, "confusion, % of row", fill=MUTED, size=11))
    return _svg(width, height, title or "heatmap", parts, "chart chart--heatmap")


def _text(x, y, text, *, anchor="start", fill=TEXT, size=12, weight=None, tip=None, rotate=False) -> SafeString:
    """Escaped text at (x, y); ``rotate`` turns it a quarter counter-clockwise about that point
    (a y axis title)."""
    weight_attr = format_html(' font-weight="{}"', weight) if weight else ""
    rotate_attr = format_html(' transform="rotate(-90 {} {})"', _f(x), _f(y)) if rotate else ""
    tip_el = format_html("<title>{}</title>", tip) if tip is not None and str(tip) != str(text) else ""
    return format_html(
        '<text x="{}" y="{}" text-anchor="{}" fill="{}" font-size="{}"{}{}>{}{}</text>',
        _f(x),
        _f(y),
        anchor,
        fill,
        size,
        weight_attr,
        rotate_attr,
        text,
        tip_el,
    )


def _line(x1, y1, x2, y2, colour, dashed=False) -> SafeString:
    dash = mark_safe(' stroke-dasharray="4 3"') if dashed else ""
    return format_html(
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}"{}/>', _f(x1), _f(y1), _f(x2), _f(y2), colour, dash
    )


# --------------------------------------------------------------------------------------------
# Grouped bars (e.g. agreement by guideline version)
# --------------------------------------------------------------------------------------------


def grouped_bars(groups, series, *, title="", y_max=1.0, value_format="{:.2f}", group_notes=None) -> SafeString:
    """Vertical bars, one group per x category and one bar per series, on a shared 0..y_max scale
    (extended below 0 when a value is negative, as kappa can be).

    Parameters
    ----------
    groups : list of str
        The x categories (escaped), e.g. "v1", "v2".
    series : list of (name, values) pairs
        ``values`` aligned with ``groups``; None draws no bar and writes "n/a".
    group_notes : list of str, optional
        A second line under each category, e.g. "1,204 labels".
    """
    n_groups, n_series = len(groups), len(series)
    values = [v for _, vals in series for v in vals if _is_number(v)]
    y_min = min(0.0, min(values, default=0.0))
    y_min = math.floor(y_min * 4) / 4 if y_min < 0 else 0.0
    y_max = max(y_max, max(values, default=0.0))
    bar = 24.0 if n_groups <= 4 else 14.0
    group_width = max(n_series * (bar + 4) + 48, 150 if n_groups <= 4 else 90)
    legend_widths = [16 + len(str(name)) * CHAR_WIDTH + 22 for name, _ in series]
    left, right, top, bottom = 44.0, 16.0, 44.0, 48.0
    plot_h = 200.0
    plot_w = max(group_width * max(n_groups, 1), sum(legend_widths), 480.0)
    width = left + plot_w + right
    height = top + plot_h + bottom
    x_start = left + (plot_w - group_width * n_groups) / 2  # groups centred in the plot

    def y_of(v):
        return top + plot_h * (y_max - v) / (y_max - y_min)

    parts = []
    # Legend, centred above the plot.
    x = left + (plot_w - sum(legend_widths)) / 2
    for s, (name, _) in enumerate(series):
        colour = SERIES_COLOURS[s % len(SERIES_COLOURS)]
        parts.append(format_html('<rect x="{}" y="12" width="11" height="11" rx="2" fill="{}"/>', _f(x), colour))
        parts.append(_text(x + 16, 22, name, fill=TEXT_2, size=12))
        x += legend_widths[s]
    # Grid and axis labels.
    tick = 0.25 if y_max - y_min <= 1.5 else 0.5
    v = y_min
    while v <= y_max + 1e-9:
        y = y_of(v)
        colour = BORDER if abs(v) > 1e-9 else "#b8bfca"
        parts.append(
            format_html(
                '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}"/>', _f(left), _f(y), _f(width - right), _f(y), colour
            )
        )
        parts.append(_text(left - 6, y + 4, f"{v:.2f}", anchor="end", fill=MUTED, size=11))
        v += tick
    zero = y_of(0.0)
    for g, group in enumerate(groups):
        gx = x_start + group_width * g
        inner = n_series * (bar + 4) - 4
        x0 = gx + (group_width - inner) / 2
        for s, (name, vals) in enumerate(series):
            value = vals[g] if g < len(vals) else None
            colour = SERIES_COLOURS[s % len(SERIES_COLOURS)]
            bx = x0 + s * (bar + 4)
            if not _is_number(value):
                parts.append(_text(bx + bar / 2, zero - 4, "n/a", anchor="middle", fill=MUTED, size=9))
                continue
            y = y_of(value)
            y_top, h = (y, zero - y) if value >= 0 else (zero, y - zero)
            parts.append(
                format_html(
                    '<rect x="{}" y="{}" width="{}" height="{}" rx="2" fill="{}"><title>{}</title></rect>',
                    _f(bx),
                    _f(y_top),
                    _f(bar),
                    _f(max(h, 0.5)),
                    colour,
                    f"{group} · {name}: {_num(value, value_format)}",
                )
            )
            label_y = y - 4 if value >= 0 else y + 12
            parts.append(_text(bx + bar / 2, label_y, _num(value, value_format), anchor="middle", fill=TEXT_2, size=10))
        cx = gx + group_width / 2
        parts.append(
            _text(cx, top + plot_h + 18, _short(group, 18), anchor="middle", fill=TEXT, size=12, weight=600, tip=group)
        )
        if group_notes and g < len(group_notes) and group_notes[g]:
            parts.append(_text(cx, top + plot_h + 34, group_notes[g], anchor="middle", fill=MUTED, size=11))
    return _svg(width, height, title or "bar chart", parts, "chart chart--bars")


# --------------------------------------------------------------------------------------------
# Inline interval bar (a value with its 95 % interval, for table cells)
# --------------------------------------------------------------------------------------------


def interval_bar(value, low=None, high=None, *, reference=None, width=128, height=16, label="") -> SafeString:
    """A small 0..1 scale with the value as a dot and its interval as a band, for a table cell.

    ``reference`` (e.g. the project's HLP) is drawn as a thin vertical tick. Missing values draw
    only the empty track.
    """
    pad = 4.0
    span = width - 2 * pad
    mid = height / 2

    def x_of(v):
        return pad + span * min(max(v, 0.0), 1.0)

    parts = [
        format_html(
            '<rect x="{}" y="{}" width="{}" height="4" rx="2" fill="{}"/>', _f(pad), _f(mid - 2), _f(span), "#e8ebf0"
        )
    ]
    if _is_number(low) and _is_number(high):
        parts.append(
            format_html(
                '<rect x="{}" y="{}" width="{}" height="8" rx="4" fill="{}"/>',
                _f(x_of(low)),
                _f(mid - 4),
                _f(max(x_of(high) - x_of(low), 2)),
                ACCENT_SOFT,
            )
        )
    if _is_number(reference):
        parts.append(
            format_html(
                '<line x1="{}" y1="1" x2="{}" y2="{}" stroke="{}" stroke-width="1.5"/>',
                _f(x_of(reference)),
                _f(x_of(reference)),
                _f(height - 1),
                MUTED,
            )
        )
    if _is_number(value):
        parts.append(
            format_html(
                '<circle cx="{}" cy="{}" r="4" fill="{}" stroke="{}" stroke-width="1.5"/>',
                _f(x_of(value)),
                _f(mid),
                ACCENT,
                SURFACE,
            )
        )
    tip = label or (
        f"{_num(value, '{:.1%}')}"
        + (f" (95% interval {_num(low, '{:.1%}')} to {_num(high, '{:.1%}')})" if _is_number(low) else "")
    )
    parts.append(format_html("<title>{}</title>", tip))
    return _svg(width, height, tip, parts, "chart chart--interval")


# --------------------------------------------------------------------------------------------
# Calibration (a model's reliability diagram)
# --------------------------------------------------------------------------------------------


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
        parts.append(_line(left, y_of(tick), left + plot, y_of(tick), GRID))
        parts.append(_text(left - 6, y_of(tick) + 4, _f(tick), anchor="end", fill=TEXT_2, size=11))
        parts.append(_text(x_of(tick), top + plot + 16, _f(tick), anchor="middle", fill=TEXT_2, size=11))
    counts = [c if _is_number(c) else 0 for c in bins.get("count") or []]
    total = sum(counts) or 1
    for lower, upper, count, conf, acc in zip(
        bins.get("lower") or [],
        bins.get("upper") or [],
        counts,
        bins.get("confidence") or [],
        bins.get("accuracy") or [],
        strict=False,
    ):
        if not count or not _is_number(acc) or not _is_number(conf):
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
    parts.append(_line(x_of(0), y_of(0), x_of(1), y_of(1), MUTED, dashed=True))
    axis = "confidence (top-class probability)"
    parts.append(_text(left + plot / 2, height - 6, axis, anchor="middle", fill=TEXT_2, size=11))
    parts.append(_text(14, top + plot / 2, "accuracy", anchor="middle", fill=TEXT_2, size=11, rotate=True))
    heading = title if not _is_number(ece) else f"{title} · ECE {ece:.3f}"
    parts.append(_text(left, 16, heading, fill=TEXT_2, size=12))
    return _svg(width, height, heading, parts, "chart chart--calibration")


# --------------------------------------------------------------------------------------------
# Learning curve across active-learning cycles
# --------------------------------------------------------------------------------------------

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


def learning_curve(points, *, highlight=None, title="Learning curve") -> SafeString:
    """Evaluated accuracy against the number of training labels, one dot per finished cycle joined
    in cycle order; the cycle numbered ``highlight`` is drawn larger and named.

    A cycle whose snapshot holds labels on field items (``field`` > 0) gets a green ring.

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
    parts.append(_text(12, top + plot_h / 2, "accuracy", anchor="middle", fill=TEXT_2, rotate=True))
    path = " ".join(f"{_f(x_of(p['labels']))},{_f(y_of(p['accuracy']))}" for p in points)
    parts.append(format_html('<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>', path, ACCENT))
    for p in points:
        x, y = x_of(p["labels"]), y_of(p["accuracy"])
        chosen = p.get("cycle") == highlight
        tip = f"cycle {p['cycle']}: {p['accuracy']:.1%} with {p['labels']:,} labels"
        if p.get("field"):  # trained on field items too: a green ring (deployment/field_queue.py)
            tip += f", {p['field']:,} of them on field items"
            parts.append(
                format_html(
                    '<circle cx="{}" cy="{}" r="{}" fill="none" stroke="{}" stroke-width="2" data-field="{}"/>',
                    _f(x),
                    _f(y),
                    10 if chosen else 7,
                    GOOD,
                    p["field"],
                )
            )
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
