"""An MLE reads the leakage check on a model's page, in a real Chromium, and moves one group of
near-duplicate photos into one split. The project holds scikit-learn's two sample photos cut into
tiles, with re-encoded, resized and cropped copies of eight of them placed in other splits
(tests/leakage_data.py); the model trains as the worker would (the check runs before it fits).

Set CONCORD_SCREENSHOTS=1 to also save docs/screenshots/leakage.png (the leakage panel).
"""

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests import leakage_data as D
from tests.e2e.conftest import PASSWORD, log_in

pytestmark = [pytest.mark.e2e]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "leakage.png"


@pytest.fixture
def leaky_model(transactional_db, tmp_path):
    from annotation.models import GoldLabel, GoldLabelClass, Item, Membership
    from annotation.services.item_import import import_items
    from annotation.services.projects import create_project
    from tests.conftest import make_user
    from training import services
    from training.models import ModelVersion

    project = create_project(slug="photos", name="Photos", data_kind="image", classes=["sky", "roof", "flower"])
    mle = make_user("mle", PASSWORD)
    Membership.objects.create(user=mle, project=project, role="mle")
    case = D.image_case()
    folder = tmp_path / "tiles"
    folder.mkdir()
    for name, data in zip(case.names, case.files, strict=True):
        (folder / name).write_bytes(data)
    import_items(project, folder, user=mle)
    for split in D.SPLITS:
        names = [n for n, s in zip(case.names, case.splits, strict=True) if s == split]
        Item.objects.filter(project=project, external_id__in=names).update(split=split)
    classes = list(project.label_classes.order_by("order"))
    for k, item in enumerate(Item.objects.filter(project=project).order_by("pk")):
        GoldLabelClass.objects.create(gold=GoldLabel.objects.create(item=item), label_class=classes[k % 3])
    version = ModelVersion.objects.create(
        project=project, trainer="sklearn_logreg", policy=services.check_policy(None), created_by=mle
    )
    assert services.run_training(version.pk) == "ready"
    return version


def test_mle_reads_the_leakage_check_and_moves_a_group(page, base_url, leaky_model):
    log_in(page, "mle")
    expect(page).to_have_url(f"{base_url}/")
    page.goto(f"/projects/photos/models/{leaky_model.short_id}/")
    panel = page.get_by_test_id("leakage")
    expect(panel.get_by_role("heading", name="Leakage between splits")).to_be_visible()
    expect(panel.get_by_test_id("leakage-thresholds")).to_contain_text("within 10 bits")
    expect(panel.get_by_test_id("leakage-summary")).to_contain_text("8 groups")
    groups = panel.locator("li.lk-group")
    expect(groups).to_have_count(8)
    first = groups.first
    expect(first.locator("li.lk-item")).to_have_count(5)  # an original and its four copies
    thumb = first.locator("img.lk-thumb").first
    thumb.scroll_into_view_if_needed()
    expect(thumb).to_have_js_property("complete", True)
    assert thumb.evaluate("img => img.naturalWidth") > 0

    if os.environ.get("CONCORD_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        for img in panel.locator("img.lk-thumb").all():  # every thumbnail loaded before the picture
            img.scroll_into_view_if_needed()
            expect(img).to_have_js_property("complete", True)
        # The panel's head and first groups, in page coordinates (a full-page picture keeps the
        # sticky header at the top of the page, off the panel).
        box = panel.evaluate(
            "el => { const r = el.getBoundingClientRect(); return [r.x, r.y + window.scrollY, r.width] }"
        )
        clip = {"x": box[0], "y": box[1], "width": box[2], "height": 640}
        page.screenshot(path=SCREENSHOT, full_page=True, clip=clip)

    button = first.get_by_test_id("leakage-move-0")
    target = button.inner_text().removeprefix("Move all to ").strip()
    button.click()
    expect(page.locator(".message--success")).to_contain_text(f"moved to {target}")
    moved = page.get_by_test_id("leakage").locator("li.lk-group").first
    expect(moved.get_by_test_id("leakage-moved")).to_contain_text(f"Moved to {target} by mle")
    expect(moved.locator(".lk-split")).to_have_count(5)
    for k in range(5):
        expect(moved.locator(".lk-split").nth(k)).to_have_text(target)
