"""The learning curve marks the cycles whose training labels include field items."""

import xml.etree.ElementTree as ET

from frontend import charts

SVG = "{http://www.w3.org/2000/svg}"


def test_a_cycle_trained_on_field_items_gets_a_ring_and_says_so():
    points = [
        {"cycle": 1, "labels": 100, "accuracy": 0.8, "field": 0},
        {"cycle": 2, "labels": 150, "accuracy": 0.85, "field": 12},
        {"cycle": 3, "labels": 200, "accuracy": 0.9},
    ]
    root = ET.fromstring(str(charts.learning_curve(points, highlight=3)))  # noqa: S314 (our own SVG)
    rings = [c for c in root.iter(f"{SVG}circle") if c.get("data-field")]
    assert [r.get("data-field") for r in rings] == ["12"]
    tips = [t.text for t in root.iter(f"{SVG}title")]
    assert "cycle 2: 85.0% with 150 labels, 12 of them on field items" in tips
    assert "cycle 1: 80.0% with 100 labels" in tips
