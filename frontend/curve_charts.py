"""Server-side SVG of training curves and of versions overlaid (the model and compare pages).

Built with frontend/charts.py's helpers and under its rules: every piece of text from data is
escaped while the SVG is built, the result is marked safe once, colours are SVG presentation
attributes (the Content-Security-Policy forbids style attributes), each mark has a ``<title>``.

A *history* is the JSON a trainer stores in ``metrics["history"]`` (training/trainers.py):
``points`` (epochs, or values of C), ``series`` of loss / val_loss / accuracy / val_accuracy,
``best`` (lowest validation loss) and ``early_stopping``.
"""

from __future__ import annotations

import math

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from .charts import (
    ACCENT,
    BAD,
    BORDER,
    GOOD,
    GRID,
    MUTED,
    SERIES_COLOURS,
    TEXT_2,
    WARN,
    _f,
    _is_number,
    _line,
    _nice_step,
    _svg,
    _text,
)

__all__ = ["line_chart", "overlaid_calibration", "overlaid_curves", "training_curves"]

WIDTH, HEIGHT = 520.0, 250.0
DASH = mark_safe(' stroke-dasharray="5 3"')  # own markup only


def _ticks(low, high, log):
    if log:
        return [10.0**e for e in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)]
    step = _nice_step(high - low or 1.0)
    start = math.floor(low / step) * step
    return [start + i * step for i in range(round((high - start) / step) + 1)]


def _label(value, log):
    if log:
        return f"{value:g}"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:.2g}"


def line_chart(series, *, title, x_label, y_label, log_x=False, marks=(), y_range=None, legend=True) -> SafeString:
    """Lines of (x, y) points. ``series``: [{name, colour, dashed, points: [(x, y)]}] (points with
    a None y are skipped). ``marks``: [{x, label, colour}] drawn as labelled vertical lines.
    ``y_range`` fixes the y axis (e.g. (0, 1) for accuracy)."""
    drawn = [s for s in series if any(_is_number(y) for _, y in s["points"])]
    if not drawn:
        return _svg(WIDTH, 60, title, [_text(12, 34, "Nothing to draw yet.", fill=MUTED)], "chart chart--curve")
    xs = [x for s in drawn for x, y in s["points"] if _is_number(y) and _is_number(x) and (x > 0 or not log_x)]
    ys = [y for s in drawn for _, y in s["points"] if _is_number(y)]
    x_low, x_high = min(xs), max(xs)
    if log_x:
        x_low, x_high = 10 ** math.floor(math.log10(x_low)), 10 ** math.ceil(math.log10(x_high))
    elif x_high == x_low:
        x_high = x_low + 1
    y_low, y_high = y_range or (min(0.0, min(ys)), max(ys) * 1.05 or 1.0)
    left, right, top, bottom = 54.0, 16.0, 24.0, 64.0 if legend else 44.0
    plot_w, plot_h = WIDTH - left - right, HEIGHT - top - bottom

    def x_of(v):
        if log_x:
            return left + plot_w * (math.log10(v) - math.log10(x_low)) / (math.log10(x_high) - math.log10(x_low))
        return left + plot_w * (v - x_low) / (x_high - x_low)

    def y_of(v):
        return top + plot_h * (y_high - min(max(v, y_low), y_high)) / ((y_high - y_low) or 1.0)

    parts = [_text(left, 15, title, fill=TEXT_2, size=12)]
    for tick in _ticks(y_low, y_high, False):
        if y_low - 1e-9 <= tick <= y_high + 1e-9:
            parts.append(_line(left, y_of(tick), left + plot_w, y_of(tick), GRID))
            parts.append(_text(left - 6, y_of(tick) + 4, f"{tick:.2g}", anchor="end", fill=MUTED, size=11))
    x_ticks = [t for t in _ticks(x_low, x_high, log_x) if x_low - 1e-9 <= t <= x_high + 1e-9]
    if not log_x and len(x_ticks) > 12:
        x_ticks = x_ticks[:: math.ceil(len(x_ticks) / 12)]
    for tick in x_ticks:
        parts.append(_line(x_of(tick), top + plot_h, x_of(tick), top + plot_h + 4, BORDER))
        parts.append(_text(x_of(tick), top + plot_h + 16, _label(tick, log_x), anchor="middle", fill=MUTED, size=11))
    parts.append(_line(left, top + plot_h, left + plot_w, top + plot_h, BORDER))
    parts.append(_text(left + plot_w / 2, top + plot_h + 32, x_label, anchor="middle", fill=TEXT_2, size=12))
    parts.append(_text(14, top + plot_h / 2, y_label, anchor="middle", fill=TEXT_2, size=12, rotate=True))
    for mark in marks:
        if not _is_number(mark.get("x")) or not x_low <= mark["x"] <= x_high:
            continue
        x = x_of(mark["x"])
        parts.append(
            format_html(
                '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-width="1.5" stroke-dasharray="2 3"'
                ' data-mark="{}"><title>{}</title></line>',
                _f(x),
                _f(top),
                _f(x),
                _f(top + plot_h),
                mark.get("colour", MUTED),
                mark.get("kind", ""),
                mark["label"],
            )
        )
        anchor = "end" if x > left + plot_w * 0.7 else "start"
        parts.append(_text(x + (-4 if anchor == "end" else 4), top + 10 + 13 * mark.get("row", 0), mark["label"],
                           anchor=anchor, fill=mark.get("colour", MUTED), size=11))  # fmt: skip
    for s in drawn:
        pts = [(x, y) for x, y in s["points"] if _is_number(y) and _is_number(x) and (x > 0 or not log_x)]
        path = " ".join(f"{_f(x_of(x))},{_f(y_of(y))}" for x, y in pts)
        dash = DASH if s.get("dashed") else ""
        parts.append(
            format_html(
                '<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{} data-series="{}"><title>{}</title>'
                "</polyline>",
                path,
                s["colour"],
                dash,
                s["name"],
                s["name"],
            )
        )
        if len(pts) <= 40:
            for x, y in pts:
                tip = f"{s['name']}: {y:.4g} at {x_label} {_label(x, log_x) if log_x else x}"
                parts.append(
                    format_html(
                        '<circle cx="{}" cy="{}" r="2.5" fill="{}"><title>{}</title></circle>',
                        _f(x_of(x)),
                        _f(y_of(y)),
                        s["colour"],
                        tip,
                    )
                )
    if legend:
        x = left
        for s in (s for s in drawn if s.get("legend", True)):
            y = HEIGHT - 10
            dash = DASH if s.get("dashed") else ""
            parts.append(
                format_html(
                    '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-width="2"{}/>',
                    _f(x),
                    _f(y - 4),
                    _f(x + 18),
                    _f(y - 4),
                    s["colour"],
                    dash,
                )
            )
            parts.append(_text(x + 22, y, s["name"], fill=TEXT_2, size=11))
            x += 30 + 6.6 * len(str(s["name"]))
    return _svg(WIDTH, HEIGHT, title, parts, "chart chart--curve")


def _points(history, key):
    return list(zip(history.get("points") or [], (history.get("series") or {}).get(key) or [], strict=False))


def _marks(history):
    x_name = history.get("x") or "epoch"
    marks = []
    best = history.get("best")
    if best and _is_number(best.get("x")):
        word = f"lowest validation loss: {x_name} {best['x']:g}"
        marks.append({"x": best["x"], "label": word, "colour": GOOD, "kind": "best", "row": 0})
    stop = history.get("early_stopping") or {}
    if stop.get("fired") and _is_number(stop.get("stopped_epoch")):
        word = f"early stopping fired: epoch {stop['stopped_epoch']}"
        marks.append({"x": stop["stopped_epoch"], "label": word, "colour": WARN, "kind": "early-stop", "row": 1})
    if history.get("kind") == "regularisation" and _is_number(history.get("chosen")):
        marks.append({"x": history["chosen"], "label": f"C used: {history['chosen']:g}", "colour": ACCENT,
                      "kind": "chosen", "row": 1})  # fmt: skip
    return marks


def training_curves(history) -> tuple[SafeString, SafeString] | None:
    """(loss chart, accuracy chart) of one stored history, with its marks; None without one."""
    if not history or not history.get("points"):
        return None
    log_x = history.get("kind") == "regularisation"
    x_label = "C (inverse regularisation strength, log scale)" if log_x else "epoch"
    marks = _marks(history)
    loss = line_chart(
        [
            {"name": "training loss", "colour": ACCENT, "points": _points(history, "loss")},
            {"name": "validation loss", "colour": BAD, "points": _points(history, "val_loss")},
        ],
        title="Loss (cross-entropy)",
        x_label=x_label,
        y_label="loss",
        log_x=log_x,
        marks=marks,
    )
    accuracy = line_chart(
        [
            {"name": "training accuracy", "colour": ACCENT, "points": _points(history, "accuracy")},
            {"name": "validation accuracy", "colour": BAD, "points": _points(history, "val_accuracy")},
        ],
        title="Accuracy",
        x_label=x_label,
        y_label="accuracy",
        log_x=log_x,
        marks=marks,
        y_range=(0.0, 1.0),
    )
    return loss, accuracy


def overlaid_curves(named_histories) -> list[SafeString]:
    """Validation loss (solid) and training loss (dashed) of several versions, one chart per kind
    of history (epochs for Keras, values of C for the logistic regression: they share no x axis);
    ``named_histories`` is [(version id, history)], colours follow that order."""
    charts = []
    usable = [(i, name, h) for i, (name, h) in enumerate(named_histories) if h and h.get("points")]
    for kind in dict.fromkeys(h.get("kind") for _, _, h in usable):
        series = []
        for i, name, h in (u for u in usable if u[2].get("kind") == kind):
            colour = SERIES_COLOURS[i % len(SERIES_COLOURS)]
            series.append({"name": name, "colour": colour, "points": _points(h, "val_loss")})
            series.append(
                {"name": f"{name} training", "colour": colour, "dashed": True, "legend": False,
                 "points": _points(h, "loss")}
            )  # fmt: skip
        log_x = kind == "regularisation"
        charts.append(
            line_chart(
                series,
                title="Loss by " + ("C" if log_x else "epoch") + ": validation solid, training dashed",
                x_label="C (log scale)" if log_x else "epoch",
                y_label="loss",
                log_x=log_x,
            )
        )
    return charts


def overlaid_calibration(named_bins) -> SafeString | None:
    """Accuracy against mean confidence per bin, one line per version, with the diagonal;
    ``named_bins`` is [(version id, stored calibration block)]."""
    series = []
    for i, (name, bins) in enumerate(named_bins):
        bins = bins or {}
        conf, acc, counts = (bins.get(key) or [] for key in ("confidence", "accuracy", "count"))
        pts = [(c, a) for c, a, n in zip(conf, acc, counts, strict=False) if n and _is_number(c) and _is_number(a)]
        series.append({"name": name, "colour": SERIES_COLOURS[i % len(SERIES_COLOURS)], "points": pts})
    if not any(s["points"] for s in series):
        return None
    series.append({"name": "perfectly calibrated", "colour": MUTED, "dashed": True, "points": [(0.0, 0.0), (1.0, 1.0)]})
    chart = line_chart(
        series,
        title="Calibration: accuracy per confidence bin",
        x_label="mean confidence in the bin",
        y_label="accuracy",
        y_range=(0.0, 1.0),
    )
    return chart
