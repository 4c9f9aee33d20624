"""An MLE reads a Keras model's training curves on the demo, compares it with the current model
side by side, and promotes a model that does not beat the current one only by giving a reason in
the confirm dialog — in a real Chromium against a live server. The models are trained in this
process through the same service the worker runs (the worker path is covered by test_training).

Set CONCORD_SCREENSHOTS=1 to also save docs/screenshots/model_curves.png and compare.png.
"""

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import PASSWORD, log_in

pytestmark = [pytest.mark.e2e]
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture
def demo_models(transactional_db):
    """The demo, a logistic model promoted, the same logistic model again, and a small Keras CNN
    (16x16 images, 8 filters, at most 12 epochs) that records its curves."""
    from annotation.services.demo import create_demo
    from training import services
    from training.models import ModelVersion

    project, _ = create_demo(password=PASSWORD, simulate_labelers=3, log=lambda *args: None)

    def train(trainer, **hp):
        version = services.create_version(project, trainer=trainer, hyperparameters=hp)
        assert services.run_training(version.pk) == "ready", ModelVersion.objects.get(pk=version.pk).error
        return ModelVersion.objects.get(pk=version.pk)

    first = train("sklearn_logreg")
    services.promote(first)
    again = train("sklearn_logreg")
    cnn = train("keras_cnn", epochs=12, image_size=16, filters=8, batch_size=32, augment=0.0, patience=3)
    return project, first, again, cnn


def _shot(page, locator, name):
    if os.environ.get("CONCORD_SCREENSHOTS") != "1":
        return
    SHOTS.mkdir(parents=True, exist_ok=True)
    locator.scroll_into_view_if_needed()
    page.wait_for_load_state("networkidle")
    locator.screenshot(path=SHOTS / name)


def test_curves_compare_and_a_promotion_that_needs_a_reason(page, base_url, demo_models):
    project, first, again, cnn = demo_models
    history = cnn.metrics["history"]
    assert history["kind"] == "epochs" and len(history["points"]) == cnn.epoch  # the demo CNN records curves
    log_in(page, "mle")
    expect(page).to_have_url(f"{base_url}/")

    # The Keras model's page: loss and accuracy curves, the lowest validation loss marked.
    page.goto(f"/projects/{project.slug}/models/{cnn.short_id}/")
    curves = page.get_by_test_id("training-curves")
    expect(curves.locator('[data-chart="loss-curve"] svg')).to_be_visible()
    expect(curves.locator('[data-chart="accuracy-curve"] svg')).to_be_visible()
    expect(curves.locator('[data-chart="loss-curve"] line[data-mark="best"]')).to_have_count(1)
    expect(curves.locator('[data-note="best"]')).to_contain_text(f"epoch {history['best']['x']}")
    expect(curves.locator('[data-note="early-stopping"]')).to_be_visible()
    _shot(page, curves, "model_curves.png")

    # Side by side with the current model, from the verdict's link.
    page.get_by_test_id("compare-with-current").click()
    expect(page).to_have_url(re.compile(rf"/models/compare/\?v={first.short_id}&v={cnn.short_id}$"))
    pair = page.locator(f'tr[data-pair="{cnn.short_id}"]')
    expect(pair.locator('[data-cell="pvalue"]')).to_have_text(re.compile(r"^[0-9.e-]+$"))
    expect(page.locator('[data-chart="compare-loss"] svg')).to_have_count(2)  # by C (logistic), by epoch (CNN)
    expect(page.locator('[data-chart="compare-calibration"] svg')).to_be_visible()
    # Add the second logistic model with the picker.
    page.locator(f'input[name="v"][value="{again.short_id}"]').check()
    page.get_by_test_id("compare-submit").click()
    expect(page.locator(f'tr[data-pair="{again.short_id}"]')).to_contain_text("within noise")
    _shot(page, page.locator("main"), "compare.png")

    # The same logistic model again does not beat the current one: the dialog says so and wants a reason.
    page.goto(f"/projects/{project.slug}/models/{again.short_id}/")
    expect(page.get_by_test_id("baseline-verdict")).to_contain_text("does not beat the current model")
    page.get_by_role("button", name="Promote to current").click()
    dialog = page.get_by_test_id("confirm-dialog")
    expect(dialog.get_by_test_id("confirm-concerns")).to_contain_text("does not beat the current model")
    dialog.get_by_role("button", name="Promote").click()  # the empty, required reason stops the form
    expect(dialog).to_be_visible()
    dialog.get_by_role("textbox").fill("retrained on the same labels to check reproducibility")
    dialog.get_by_role("button", name="Promote").click()
    expect(page.get_by_test_id("current-badge")).to_be_visible()
    from training.models import Promotion

    assert Promotion.objects.get(model_version=again).note == "retrained on the same labels to check reproducibility"
