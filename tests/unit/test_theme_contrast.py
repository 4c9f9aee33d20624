"""The colour variables of concord.css, both themes: every text/background pair the stylesheets
use is at least 4.5:1 (WCAG 2 AA for body text), and the dark theme redefines every colour.

The browser-side check of the computed colours on each page is in
tests/e2e/test_layout_and_theme.py; this one reads the CSS itself, so a palette change that breaks
contrast fails here at once, without a browser."""

import re
from pathlib import Path

import pytest

CSS = Path(__file__).resolve().parents[2] / "frontend" / "static" / "frontend" / "concord.css"
AA = 4.5

# (text, background) pairs as the stylesheets combine them.
PAIRS = [
    *[(fg, bg) for fg in ("text", "text-2", "muted") for bg in ("bg", "surface", "surface-2", "neutral-soft")],
    *[("accent", bg) for bg in ("bg", "surface", "surface-2", "accent-soft")],  # links, .work-edit summary
    ("accent-strong", "accent-soft"),  # notices, info alerts, the current nav item, keys
    ("accent-strong", "surface"),  # role badge
    ("on-accent", "accent"),  # primary buttons, the picked class, the skip link
    ("on-accent", "accent-strong"),  # primary buttons on hover
    *[(c, f"{c}-soft") for c in ("good", "warn", "bad", "violet")],  # badges, alerts, banners
    *[(c, bg) for c in ("good", "warn", "bad", "violet") for bg in ("surface", "surface-2")],  # text, role badges
    ("text-2", "accent-soft"),  # a hovered class button
    ("muted", "warn-soft"),  # small print in the stale-report notice
]


def relative_luminance(hex_colour):
    """WCAG 2 relative luminance of an sRGB colour written #rrggbb."""
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a, b):
    """WCAG 2 contrast ratio of two colours, 1 to 21, the same whichever is the text."""
    high, low = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _variables(block):
    return dict(re.findall(r"--([a-z0-9-]+):\s*(#[0-9a-fA-F]{6})\s*;", block))


def _blocks():
    """The :root block, and the :root inside the prefers-color-scheme: dark query."""
    css = CSS.read_text()
    light = re.search(r"^:root \{(.*?)^\}", css, re.MULTILINE | re.DOTALL).group(1)
    dark = re.search(r"@media \(prefers-color-scheme: dark\) \{\s*:root \{(.*?)\}", css, re.DOTALL).group(1)
    return _variables(light), _variables(dark)


def palettes():
    """{'light': {name: #hex}, 'dark': {...}}; the dark theme inherits what it does not redefine."""
    light, dark = _blocks()
    return {"light": light, "dark": {**light, **dark}}


def test_the_contrast_function_matches_known_ratios():
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#ffffff", "#ffffff") == pytest.approx(1.0)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)  # the classic near miss
    assert contrast("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)
    assert contrast("#2f5d8a", "#e8f0f8") == contrast("#e8f0f8", "#2f5d8a")


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_every_text_pair_meets_aa(theme):
    palette = palettes()[theme]
    failures = [
        f"--{fg} on --{bg}: {contrast(palette[fg], palette[bg]):.2f}"
        for fg, bg in PAIRS
        if contrast(palette[fg], palette[bg]) < AA
    ]
    assert failures == []


def test_the_dark_theme_redefines_every_colour_and_is_dark():
    light, dark = _blocks()
    assert len(light) > 20 and set(dark) == set(light)  # none left light by mistake
    for name in ("bg", "surface", "surface-2"):
        assert relative_luminance(dark[name]) < 0.05 < relative_luminance(light[name])
