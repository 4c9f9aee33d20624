"""The monitoring page's pictures: time series of the tested windows with their thresholds drawn,
and predictions per day. Server-side SVG built with frontend/charts.py's escaped helpers (no
inline style or script: the page's Content-Security-Policy forbids them)."""

from __future__ import annotations

import math

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from frontend.charts import (
    ACCENT,
    BAD,
    BORDER,
    GOOD,
    GRID,
    MUTED,
    SURFACE,
    TEXT_2,
    VIOLET,
    WARN,
    _f,
    _line,
    _svg,
    _text,
)

P_CAP = 20.0  # -log10 p above this is drawn at the top edge (p < 1e-20: the same story)
SERIES = {"classes": ACCENT, "confidence": VIOLET, "inputs": GOOD}


def _tip(name, value, fmt) -> str:
    return "" if value is None else f"{name} {value:{fmt}}"


def _neglog(p) -> float | None:
    if p is None:
        return None
    return min(P_CAP, -math.log10(max(p, 1e-300)))


def line_chart(series, *, thresholds=(), title, y_label, y_max=None, x_label="predictions seen") -> SafeString:
    """Lines over the windows: ``series`` is [(name, colour, points)] with points
    [(x, y or None, tip, alarm)]; ``thresholds`` [(y, label, colour)] are dashed lines across.
    An alarming window's point is drawn as a larger red ring."""
    width, height = 560.0, 240.0
    left, right, top, bottom = 52.0, 126.0, 16.0, 40.0
    plot_w, plot_h = width - left - right, height - top - bottom
    xs = [p[0] for _, _, pts in series for p in pts]
    ys = [p[1] for _, _, pts in series for p in pts if p[1] is not None] + [t[0] for t in thresholds]
    if not xs:
        return _svg(width, 60, title, [_text(12, 34, "No tested window yet.", fill=MUTED)], "chart chart--monitor")
    x_low, x_high = 0.0, float(max(xs)) or 1.0
    y_high = y_max if y_max is not None else max(max(ys, default=1.0) * 1.1, 1e-9)

    def x_of(v):
        return left + plot_w * (v - x_low) / (x_high - x_low)

    def y_of(v):
        return top + plot_h * (1 - min(max(v, 0.0), y_high) / y_high)

    parts = []
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = y_of(y_high * frac)
        parts.append(_line(left, y, left + plot_w, y, GRID))
        parts.append(_text(left - 6, y + 4, f"{y_high * frac:.3g}", anchor="end", fill=MUTED, size=11))
    for frac in (0.0, 0.5, 1.0):
        x = x_of(x_high * frac)
        parts.append(_text(x, top + plot_h + 16, f"{x_high * frac:,.0f}", anchor="middle", fill=MUTED, size=11))
    parts.append(_line(left, top + plot_h, left + plot_w, top + plot_h, BORDER))
    parts.append(_text(left + plot_w / 2, height - 6, x_label, anchor="middle", fill=TEXT_2, size=12))
    parts.append(_text(12, top + plot_h / 2, y_label, anchor="middle", fill=TEXT_2, rotate=True))
    for value, label, colour in thresholds:
        y = y_of(value)
        parts.append(_line(left, y, left + plot_w, y, colour, dashed=True))
        parts.append(_text(left + plot_w + 6, y + 4, label, fill=colour, size=11, tip=f"{label}: {value:.3g}"))
    legend_y = top + plot_h * 0.55
    for j, (name, colour, points) in enumerate(series):
        drawn = [(x_of(x), y_of(y), tip, alarm) for x, y, tip, alarm in points if y is not None]
        if len(drawn) > 1:
            path = " ".join(f"{_f(x)},{_f(y)}" for x, y, _, _ in drawn)
            parts.append(format_html('<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>', path, colour))
        for x, y, tip, alarm in drawn:
            parts.append(
                format_html(
                    '<circle cx="{}" cy="{}" r="{}" fill="{}" stroke="{}" stroke-width="2"{}>'
                    "<title>{}</title></circle>",
                    _f(x),
                    _f(y),
                    5 if alarm else 3,
                    SURFACE if alarm else colour,
                    BAD if alarm else colour,
                    mark_safe(' data-alarm="1"') if alarm else "",
                    tip,
                )
            )
        if len(series) > 1:
            ly = legend_y + 16 * j
            parts.append(_line(left + plot_w + 6, ly - 4, left + plot_w + 20, ly - 4, colour))
            parts.append(_text(left + plot_w + 24, ly, name, fill=TEXT_2, size=11))
    return _svg(width, height, title, parts, "chart chart--monitor")


def evidence_chart(windows, level) -> SafeString:
    """-log10 p of each window's tests, with the alarm line at -log10(level)."""
    series = []
    for key, name, field in (("classes", "classes", "chi2_p"), ("confidence", "confidence", "ks_p")):
        pts = [
            (w["_x"], _neglog(w[field]), f"{name}: p = {w[field]:.2g} at {w['end_at']}", w["alarm"]) for w in windows
        ]
        series.append((name, SERIES[key], pts))
    pts = [
        (
            w["_x"],
            _neglog(w["input_p"]),
            f"inputs: p = {w['input_p']:.2g}" if w["input_p"] is not None else "",
            w["alarm"],
        )
        for w in windows
    ]
    if any(p[1] is not None for p in pts):
        series.append(("inputs", SERIES["inputs"], pts))
    line = -math.log10(level) if level else None
    thresholds = [(line, "alarm", BAD)] if line else []
    return line_chart(
        series, thresholds=thresholds, title="Evidence of drift per window", y_label="-log10 p", y_max=P_CAP
    )


def psi_chart(windows, warning) -> SafeString:
    pts = [(w["_x"], w["psi"], f"PSI {w['psi']:.3f} at {w['end_at']}", w["alarm"]) for w in windows]
    return line_chart(
        [("class PSI", ACCENT, pts)],
        thresholds=[(0.1, "moving", WARN), (warning, "shifted", BAD)],
        title="Predicted-class distribution against dev (PSI)",
        y_label="PSI",
    )


def shift_chart(windows) -> SafeString:
    """KS statistic of the confidences, the input-drift score and the mean confidence (all 0..1)."""
    ks = [(w["_x"], w["ks"], f"KS {w['ks']:.3f}", w["alarm"]) for w in windows]
    score = [
        (
            w["_x"],
            w["input_score"],
            f"input drift {w['input_score']:.3f}" if w["input_score"] is not None else "",
            w["alarm"],
        )
        for w in windows
    ]
    mean = [(w["_x"], w["mean_confidence"], f"mean confidence {w['mean_confidence']:.3f}", False) for w in windows]
    series = [("confidence KS", VIOLET, ks), ("mean confidence", MUTED, mean)]
    if any(p[1] is not None for p in score):
        series.append(("input drift", GOOD, score))
    return line_chart(series, title="Confidence shift and input drift", y_label="0 … 1", y_max=1.0)


def day_bars(per_day) -> SafeString:
    """Predictions per day as bars."""
    width, height = 560.0, 180.0
    left, right, top, bottom = 52.0, 20.0, 14.0, 36.0
    if not per_day:
        return _svg(width, 60, "Predictions per day", [_text(12, 34, "No predictions yet.", fill=MUTED)], "chart")
    plot_w, plot_h = width - left - right, height - top - bottom
    top_n = max(d["predictions"] for d in per_day) or 1
    step = plot_w / len(per_day)
    parts = [_line(left, top + plot_h, left + plot_w, top + plot_h, BORDER)]
    parts.append(_text(left - 6, top + 8, f"{top_n:,}", anchor="end", fill=MUTED, size=11))
    parts.append(_text(12, top + plot_h / 2, "predictions", anchor="middle", fill=TEXT_2, rotate=True))
    for j, d in enumerate(per_day):
        h = plot_h * d["predictions"] / top_n
        x = left + j * step + step * 0.15
        parts.append(
            format_html(
                '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}</title></rect>',
                _f(x),
                _f(top + plot_h - h),
                _f(step * 0.7),
                _f(h),
                ACCENT,
                f"{d['day']}: {d['predictions']:,} predictions",
            )
        )
        if len(per_day) <= 14 or j in (0, len(per_day) - 1):
            parts.append(_text(x + step * 0.35, top + plot_h + 16, d["day"][5:], anchor="middle", fill=MUTED, size=11))
    return _svg(width, height, "Predictions per day", parts, "chart")


def charts_for(summary) -> dict:
    """The page's charts from :func:`deployment.monitoring.summary`."""
    windows, x = [], 0
    for w in summary["windows"]:
        x += w["n"]
        windows.append({**w, "_x": x})
    th = summary["thresholds"]
    level = windows[-1]["level"] if windows else th["alpha"] / 2
    return {
        "evidence": evidence_chart(windows, level),
        "psi": psi_chart(windows, th["psi_warning"]),
        "shift": shift_chart(windows),
        "per_day": day_bars(summary["per_day"]),
    }
