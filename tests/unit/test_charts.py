"""frontend.charts: every chart is well-formed XML (xml.etree parses it), escapes data text, and copes
with missing values. No database."""

import xml.etree.ElementTree as ET

from django.utils.safestring import SafeString

from frontend import charts

SVG = "{http://www.w3.org/2000/svg}"
XSS = '<script>alert("x")</script>'
ATTRIBUTE_BREAK = 'a" onload="alert(1)'


def parse(svg):
    assert isinstance(svg, SafeString)
    root = ET.fromstring(str(svg))  # noqa: S314 (our own output, parsed to check it)
    assert root.tag == f"{SVG}svg"
    return root


def texts(root):
    return ["".join(el.itertext()) for el in root.iter() if el.tag in (f"{SVG}text", f"{SVG}title")]


def test_heatmap_is_well_formed_and_escapes_a_script_class_name():
    labels = ["cat", XSS, ATTRIBUTE_BREAK]
    shares = [[0.8, 0.2, 0.0], [0.1, 0.9, 0.0], [None, None, None]]
    counts = [[8, 2, 0], [1, 9, 0], [0, 0, 0]]
    svg = charts.heatmap(shares, labels, counts=counts, title="Confusion <of> classes")
    root = parse(svg)
    # The raw markup never appears; the parsed text holds the names exactly.
    assert "<script" not in svg and 'onload="' not in svg
    assert "&lt;script&gt;" in svg
    all_text = " ".join(texts(root))
    assert XSS in all_text and ATTRIBUTE_BREAK in all_text
    assert not any(el.tag.endswith("script") for el in root.iter())
    assert all("onload" not in el.attrib for el in root.iter())
    assert root.get("aria-label") == "Confusion <of> classes"
    cells = [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert len(cells) == 9
    assert any(r.find(f"{SVG}title").text == "cat → cat: 80.0% (8 label pairs)" for r in cells)


def test_heatmap_of_many_classes_and_of_none():
    many = [f"class {i}" for i in range(40)]
    shares = [[1.0 if i == j else 0.0 for j in range(40)] for i in range(40)]
    root = parse(charts.heatmap(shares, many))
    assert len([r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]) == 1600
    parse(charts.heatmap([], []))


def test_grouped_bars_escape_groups_and_series_and_show_missing_values():
    svg = charts.grouped_bars(
        ["v1", XSS],
        [("alpha", [0.5, None]), (ATTRIBUTE_BREAK, [-0.2, 0.9])],
        group_notes=["10 labels", "<b>20</b> labels"],
        title="Agreement by version",
    )
    root = parse(svg)
    assert "<script" not in svg and "<b>" not in svg
    words = texts(root)
    assert "n/a" in words and "-0.20" in words and "0.90" in words
    assert XSS in " ".join(words) and "<b>20</b> labels" in words
    # A negative value extends the axis below zero.
    assert "-0.25" in words


def test_interval_bar_with_and_without_values():
    root = parse(charts.interval_bar(0.8, 0.7, 0.9, reference=0.85))
    assert len(list(root.iter(f"{SVG}circle"))) == 1
    root = parse(charts.interval_bar(None, None, None, label=XSS))
    assert list(root.iter(f"{SVG}circle")) == []
    assert root.find(f"{SVG}title").text == XSS


def test_reliability_diagram_draws_one_bar_and_dot_per_non_empty_bin():
    bins = {
        "lower": [0.0, 0.5], "upper": [0.5, 1.0], "count": [0, 30],
        "confidence": [None, 0.8], "accuracy": [None, 0.7],
    }  # fmt: skip
    svg = charts.reliability_diagram(bins, ece=0.1, title=XSS)
    root = parse(svg)
    assert root.get("aria-label") == f"{XSS} · ECE 0.100" and "<script" not in svg
    bars = [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    dots = list(root.iter(f"{SVG}circle"))
    assert len(bars) == len(dots) == 1
    assert bars[0].find(f"{SVG}title").text.startswith("confidence 0.5 to 1.0: 30 items (100%), accuracy 70.0%")
    axis = next(el for el in root.iter(f"{SVG}text") if el.text == "accuracy")
    assert axis.get("transform", "").startswith("rotate(-90")


def test_learning_curve_joins_the_cycles_and_marks_the_highlighted_one():
    points = [{"cycle": 1, "labels": 100, "accuracy": 0.8}, {"cycle": 2, "labels": 200, "accuracy": 0.9}]
    root = parse(charts.learning_curve(points, highlight=2))
    assert len(list(root.iter(f"{SVG}polyline"))) == 1
    dots = {c.get("data-point"): c for c in root.iter(f"{SVG}circle")}
    assert set(dots) == {"1", "2"} and dots["2"].get("r") == "7" and dots["1"].get("r") == "4"
    assert "cycle 2 · 90.0%" in texts(root)
    empty = parse(charts.learning_curve([]))
    assert texts(empty) == ["No finished cycle yet."]
