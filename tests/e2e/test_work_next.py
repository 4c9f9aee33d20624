"""An MLE reads the "where to work next" table of a trained model in a real Chromium: the tag put on
items before training is a row; "Label more like this" on it launches a cycle whose page shows the
restriction. The model is trained in-process before the browser opens (the training page has its
own test); the cycle stays queued (no worker: its page already shows the restriction).

With CONCORD_SCREENSHOTS=1 also saves docs/screenshots/work_next.png (the table) for the README.
"""

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in

pytestmark = [pytest.mark.e2e]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "work_next.png"


@pytest.fixture
def trained(transactional_db, project, mle, labeler, labeler2, settings):
    """150 gold digits and 30 unlabelled ones; the tag "smudged" on 78 of them: 8 dev items (5 of
    them carry a wrong gold label, so the model's errors are there), 60 labelled and 10 unlabelled
    train items; two labelers label 20 items; a model trained on it."""
    from annotation.models import GoldLabelClass, ItemTag, Tag
    from annotation.services import labeling
    from tests.integration.training_data import add_digit_items, label
    from training import services
    from training.models import ModelVersion

    settings.CONCORD_TRAINING = {**settings.CONCORD_TRAINING, "CV_BELOW_LABELS": 10}
    items = add_digit_items(project, 150)
    add_digit_items(project, 30, gold=False, start=150)
    classes = list(project.label_classes.filter(is_ambiguity=False).order_by("order")[:3])
    dev = [i for i in items if i.split == "dev"]
    for item in dev[:5]:
        GoldLabelClass.objects.filter(gold__item=item).update(label_class=classes[(items.index(item) + 1) % 3])
    for item in [i for i in items if i.split == "train"][:20]:
        label(item, labeler, classes[items.index(item) % 3])
        label(item, labeler2, classes[items.index(item) % 3])
    tag = Tag.objects.create(project=project, name="smudged", colour="#aa3355")
    train = [i for i in project.items.order_by("pk") if i.split == "train"]  # 90 gold, then 18 unlabelled
    tagged = dev[:8] + train[30:90] + train[90:100]
    ItemTag.objects.bulk_create(ItemTag(tag=tag, item=i) for i in tagged)
    labeling.refresh_queue_state(project)
    version = ModelVersion.objects.create(
        project=project,
        trainer="sklearn_logreg",
        hyperparameters=services.check_hyperparameters("sklearn_logreg", {}),
        policy=services.check_policy(None),
    )
    assert services.run_training(version.pk) == "ready", ModelVersion.objects.get(pk=version.pk).error
    version.refresh_from_db()
    return version


def test_mle_sees_the_tag_row_and_labels_more_like_it(page, base_url, project, trained):
    from active_learning.models import Cycle

    log_in(page, "mle")
    expect(page).to_have_url(f"{base_url}/")
    page.goto(f"/projects/{project.slug}/models/{trained.short_id}/")
    section = page.get_by_test_id("work-next")
    expect(section.get_by_role("heading", name="Where to work next")).to_be_visible()
    expect(section.locator('[data-legend="work-next"]')).to_contain_text("priority = gap to HLP x share of all data")
    rows = section.locator('table[data-table="work-next"] tbody tr')
    tag_row = rows.filter(has=page.get_by_test_id("tag-row"))
    expect(tag_row).to_have_count(1)
    expect(tag_row.get_by_test_id("tag-row")).to_have_text("smudged")
    expect(rows.first).to_have_attribute("data-slice", "tag:smudged=yes")  # it holds the errors: first
    expect(tag_row.locator('[data-cell="error-share"]')).to_contain_text("%")

    # Sorting by a column is a link; the share of data ascending puts the smallest slice first.
    section.locator('a[data-sort="share"]').click()
    expect(page).to_have_url(re.compile(r"\?sort=share&order=desc#work-next$"))
    section.locator('a[data-sort="share"]').click()
    expect(page).to_have_url(re.compile(r"\?sort=share&order=asc#work-next$"))
    shares = [
        float(t.rstrip("%"))
        for t in section.locator('table[data-table="work-next"] [data-cell="share"]').all_inner_texts()
    ]
    assert shares == sorted(shares)

    if os.environ.get("CONCORD_SCREENSHOTS") == "1":
        page.goto(f"/projects/{project.slug}/models/{trained.short_id}/")
        page.wait_for_load_state("networkidle")
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        box = page.get_by_test_id("work-next").bounding_box()
        # A full-page capture clipped to the section: the sticky header stays at the page's top.
        page.screenshot(path=SCREENSHOT, full_page=True, clip={**box, "x": 0, "width": 1280})

    tag_row = page.get_by_test_id("work-next").locator('tr[data-slice="tag:smudged=yes"]')
    tag_row.get_by_role("button", name="Label more like this").click()
    cycle = Cycle.objects.get()
    expect(page).to_have_url(f"{base_url}/projects/{project.slug}/cycles/{cycle.number}/")
    expect(page.locator(".message--success")).to_contain_text("launched on tag smudged")
    expect(page.get_by_test_id("pool-restriction")).to_contain_text("the unlabeled items tagged smudged")
    assert cycle.pool_restriction == {"kind": "tag", "tag": "smudged"} and cycle.trainer == "sklearn_logreg"
