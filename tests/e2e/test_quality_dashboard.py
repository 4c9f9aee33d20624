"""The label-quality dashboard of the demo project (three simulated labelers), as its MLE sees it in a
real Chromium: the headline figures, the labeler table, the confusion heatmap, the slice table and
the guideline-version chart.

Set CONCORD_SCREENSHOTS=1 to also save docs/screenshots/quality.png (the whole page); by default the
test writes nothing into the repository.
"""

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import PASSWORD, log_in

pytestmark = [pytest.mark.e2e]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "quality.png"


@pytest.fixture
def demo(transactional_db):
    from annotation.services.demo import create_demo

    project, _ = create_demo(password=PASSWORD, simulate_labelers=3, log=lambda *args: None)
    return project


def test_mle_reads_the_quality_dashboard_of_the_demo(page, base_url, demo):
    log_in(page, "mle")
    expect(page).to_have_url(f"{base_url}/")
    page.goto("/projects/digits/quality/")

    expect(page.get_by_role("heading", name="Label quality", level=1)).to_be_visible()
    expect(page.get_by_test_id("report-age")).to_contain_text("annotations")
    expect(page.locator('[data-stat="alpha"] .stat__value')).to_have_text(re.compile(r"^0\.\d{3}$"))
    expect(page.locator('[data-stat="alpha"] .stat__sub')).to_contain_text("items with 2+ labels")
    expect(page.locator('[data-stat="kappa"] .stat__value')).to_have_text(re.compile(r"^0\.\d{3}$"))
    expect(page.locator('[data-stat="hlp"] .stat__label')).to_have_text("HLP (accuracy vs truth)")

    # One row per simulated labeler, each with an accuracy and an interval drawn.
    labelers = page.locator('table[data-table="labelers"] tbody tr')
    expect(labelers).to_have_count(3)
    for name in ("sim-careful@digits", "sim-mixer@digits", "sim-noisy@digits"):
        row = page.locator(f'tr[data-labeler="{name}"]')
        expect(row).to_contain_text("%")
        expect(row.locator("svg circle")).to_have_count(1)

    # The heatmap: 11 x 11 cells (digits and 'unclear'), the mixer's 1/7 and 3/8 among the pairs.
    heatmap = page.locator('[data-chart="confusion"] svg')
    heatmap.scroll_into_view_if_needed()
    expect(heatmap).to_be_visible()
    expect(heatmap.locator("rect:has(title)")).to_have_count(121)
    box = heatmap.bounding_box()
    assert box["width"] > 300 and box["height"] > 300
    pairs = page.locator('[data-list="confused-pairs"] li')
    expect(pairs.first).to_be_visible()
    expect(page.locator('[data-list="confused-pairs"]')).to_contain_text("8")

    # The slice table: the demo's 'ink' slice in three values.
    slices = page.locator('table[data-table="slices"]')
    slices.scroll_into_view_if_needed()
    for value in ("light", "medium", "heavy"):
        row = slices.locator(f'tr[data-slice="ink={value}"]')
        expect(row).to_be_visible()
        expect(row.locator("td.strong")).to_have_text(re.compile(r"^\d+\.\d%$"))

    # The guideline-version chart: one group, v1, with its bars.
    versions = page.locator('[data-chart="versions"] svg')
    versions.scroll_into_view_if_needed()
    expect(versions).to_be_visible()
    expect(versions.locator("text", has_text=re.compile(r"^v1$"))).to_have_count(1)
    assert versions.locator("rect:has(title)").count() == 4  # alpha, kappa, agreement, accuracy

    expect(page.locator('table[data-table="disputed"] tbody tr').first).to_be_visible()

    if os.environ.get("CONCORD_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.evaluate("window.scrollTo(0, 0)")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=SCREENSHOT, full_page=True)
