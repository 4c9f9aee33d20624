"""Learning curves as a PNG, drawn with Pillow (matplotlib is not a dependency of Concord).

One function, :func:`learning_curves_png`: per series a mean line over a translucent spread band,
an optional dashed target line, axes with round-number ticks, a title and a legend on the right.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

from PIL import Image, ImageColor, ImageDraw, ImageFont

# matplotlib's "tab10": distinct, colour-blind friendlier than pure hues, familiar to readers.
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
# Pillow draws lines without anti-aliasing: draw at this multiple of the size, then downsample.
SCALE = 2
BAND_ALPHA = 50
INK, GRID, AXIS = (40, 40, 40), (228, 228, 228), (120, 120, 120)


def nice_ticks(lo: float, hi: float, max_ticks: int = 6) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 times a power of ten apart) covering ``[lo, hi]``: the first
    tick is at or below ``lo``, the last at or above ``hi``."""
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0) * 0.1
    raw = (hi - lo) / max(1, max_ticks - 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    first = math.floor(lo / step + 1e-9) * step
    count = math.ceil((hi - first) / step - 1e-9)
    return [round(first + i * step, 12) for i in range(count + 1)]


def _font(px: int):
    return ImageFont.load_default(size=px)


def _tick_text(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step < 1 else 0
    if step < 1 and round(step * 10**decimals) % 1:  # e.g. a step of 0.025 needs one more digit
        decimals += 1
    return f"{value:,.{decimals}f}"


def _dashed_line(draw, points, fill, width: int, dash: float, gap: float) -> None:
    """A polyline through ``points`` drawn as dashes of ``dash`` pixels, ``gap`` apart."""
    pen_down, left_in_phase = True, dash  # the dash pattern runs on across the segments
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        length, done = math.hypot(x1 - x0, y1 - y0), 0.0
        while done < length:
            step = min(left_in_phase, length - done)
            if pen_down:
                a, b = done / length, (done + step) / length
                draw.line(
                    [(x0 + a * (x1 - x0), y0 + a * (y1 - y0)), (x0 + b * (x1 - x0), y0 + b * (y1 - y0))],
                    fill=fill,
                    width=width,
                )
            done += step
            left_in_phase -= step
            if left_in_phase <= 0:
                pen_down = not pen_down
                left_in_phase = dash if pen_down else gap


def learning_curves_png(
    path,
    series: list[dict],
    *,
    target: float | None = None,
    target_label: str = "",
    title: str = "",
    x_label: str = "labels",
    y_label: str = "test accuracy",
    size: tuple[int, int] = (960, 560),
) -> Path:
    """Write the curves to ``path`` (a PNG) and return it.

    ``series``: dicts with ``name``, ``labels`` (T,), ``mean`` (T,) and optionally ``low`` / ``high``
    (T,) bounds of the spread band, ``color`` (``"#rrggbb"``; else the palette in order) and
    ``dashed`` (True draws the line dashed and no band, e.g. a reference drawn over another curve).
    ``target`` draws a dashed horizontal line labelled ``target_label``.
    """
    if not series:
        raise ValueError("series must not be empty")
    s = SCALE
    width, height = size[0] * s, size[1] * s
    font, small, big = _font(13 * s), _font(12 * s), _font(16 * s)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def text_size(text, f):
        box = probe.textbbox((0, 0), text, font=f)
        return box[2] - box[0], box[3] - box[1]

    colors = [c.get("color") or PALETTE[i % len(PALETTE)] for i, c in enumerate(series)]
    legend_w = max(text_size(c["name"], font)[0] for c in series) + 48 * s
    left, right = 72 * s, width - legend_w - 24 * s
    top, bottom = (52 if title else 24) * s, height - 56 * s

    xs = [x for c in series for x in c["labels"]]
    ys = [y for c in series for key in ("mean", "low", "high") for y in c.get(key, [])]
    if target is not None:
        ys.append(target)
    x_ticks = nice_ticks(0, max(xs), 8)
    y_ticks = nice_ticks(min(ys), max(ys), 7)
    x_lo, x_hi, y_lo, y_hi = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]

    def px(x, y):
        return (
            left + (x - x_lo) / (x_hi - x_lo) * (right - left),
            bottom - (y - y_lo) / (y_hi - y_lo) * (bottom - top),
        )

    image = Image.new("RGBA", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for t in x_ticks:
        x, _ = px(t, y_lo)
        draw.line([(x, top), (x, bottom)], fill=GRID, width=s)
        label = _tick_text(t, x_ticks[1] - x_ticks[0])
        w, _ = text_size(label, small)
        draw.text((x - w / 2, bottom + 8 * s), label, font=small, fill=INK)
    for t in y_ticks:
        _, y = px(x_lo, t)
        draw.line([(left, y), (right, y)], fill=GRID, width=s)
        label = _tick_text(t, y_ticks[1] - y_ticks[0])
        w, h = text_size(label, small)
        draw.text((left - w - 8 * s, y - h / 2 - 2 * s), label, font=small, fill=INK)

    # Each band on its own layer: drawing on one RGBA layer would replace, not blend, overlaps.
    for c, color in zip(series, colors, strict=True):
        if "low" in c and "high" in c and not c.get("dashed"):
            layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
            outline = [px(x, y) for x, y in zip(c["labels"], c["high"], strict=True)]
            outline += [px(x, y) for x, y in reversed(list(zip(c["labels"], c["low"], strict=True)))]
            ImageDraw.Draw(layer).polygon(outline, fill=(*ImageColor.getrgb(color)[:3], BAND_ALPHA))
            image = Image.alpha_composite(image, layer)
    draw = ImageDraw.Draw(image)
    for c, color in zip(series, colors, strict=True):
        points = [px(x, y) for x, y in zip(c["labels"], c["mean"], strict=True)]
        if c.get("dashed"):
            _dashed_line(draw, points, color, 2 * s, 7 * s, 4 * s)
        else:
            draw.line(points, fill=color, width=2 * s, joint="curve")

    if target is not None:
        _, y = px(x_lo, target)
        _dashed_line(draw, [(left, y), (right, y)], INK, s, 8 * s, 6 * s)
        if target_label:
            # Top left, above the line: learning curves rise from the bottom left, so it stays clear.
            _, h = text_size(target_label, small)
            draw.text((left + 8 * s, y - h - 10 * s), target_label, font=small, fill=INK)
    draw.rectangle([left, top, right, bottom], outline=AXIS, width=s)

    if title:
        w, _ = text_size(title, big)
        draw.text(((left + right) / 2 - w / 2, 16 * s), title, font=big, fill=INK)
    w, _ = text_size(x_label, font)
    draw.text(((left + right) / 2 - w / 2, bottom + 30 * s), x_label, font=font, fill=INK)
    w, h = text_size(y_label, font)
    rotated = Image.new("RGBA", (w + 4 * s, h + 8 * s), (0, 0, 0, 0))
    ImageDraw.Draw(rotated).text((2 * s, 0), y_label, font=font, fill=INK)
    rotated = rotated.rotate(90, expand=True)
    image.alpha_composite(rotated, (14 * s, int((top + bottom) / 2 - rotated.height / 2)))

    draw = ImageDraw.Draw(image)
    legend_x, row = right + 20 * s, 22 * s
    for i, (c, color) in enumerate(zip(series, colors, strict=True)):
        y = top + 6 * s + i * row
        swatch = [(legend_x, y + 8 * s), (legend_x + 22 * s, y + 8 * s)]
        if c.get("dashed"):
            _dashed_line(draw, swatch, color, 3 * s, 5 * s, 3 * s)
        else:
            draw.line(swatch, fill=color, width=3 * s)
        draw.text((legend_x + 30 * s, y), c["name"], font=font, fill=INK)
    if any("low" in c for c in series):
        draw.text((legend_x, top + 12 * s + len(series) * row), "band: mean ± 1 std", font=small, fill=AXIS)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.convert("RGB").resize(size, Image.Resampling.LANCZOS).save(path, optimize=True)
    return path
