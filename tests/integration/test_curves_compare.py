"""Training curves stored with each version, live loss, versions side by side (McNemar's test on
stored per-item predictions) and the rule that a model not beating its baselines beyond noise is
promoted only with a reason (issue 18, items 1, 3 and 4)."""

import numpy as np
import pytest
from django.urls import reverse
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

from annotation.models import Item
from training import services, side_by_side
from training.models import ModelVersion, Promotion

from .training_data import add_digit_items

pytestmark = pytest.mark.django_db


def trained(project, trainer="sklearn_logreg", **hp):
    version = ModelVersion.objects.create(
        project=project,
        trainer=trainer,
        hyperparameters=services.check_hyperparameters(trainer, hp),
        policy=services.check_policy(None),
    )
    assert services.run_training(version.pk) == "ready", ModelVersion.objects.get(pk=version.pk).error
    version.refresh_from_db()
    return version


@pytest.fixture
def holdout(settings):
    settings.CONCORD_TRAINING = {**settings.CONCORD_TRAINING, "CV_BELOW_LABELS": 10}


def _dev_ids(project):
    return set(Item.objects.filter(project=project, split="dev").values_list("pk", flat=True))


# --------------------------------------------------------------------------------------------
# Curves
# --------------------------------------------------------------------------------------------


def test_the_logistic_model_stores_a_validation_curve_over_c_and_its_dev_predictions(project, holdout):
    add_digit_items(project, 60)
    version = trained(project, C=0.05)
    history = version.metrics["history"]
    assert history["kind"] == "regularisation" and history["x"] == "C" and history["validation"] == "dev"
    assert history["points"] == pytest.approx([0.0005, 0.005, 0.05, 0.5, 5.0])
    assert history["chosen"] == 0.05 and history["n_iter"] >= 1
    val = history["series"]["val_loss"]
    assert len(val) == 5 and history["best"]["val_loss"] == min(val)
    assert history["points"][history["best"]["index"]] == history["best"]["x"]
    # The dev accuracy at the chosen C is the version's own evaluated accuracy: the kept model.
    assert history["series"]["val_accuracy"][2] == pytest.approx(version.metrics["evaluation"]["accuracy"])
    stored = version.predictions
    assert set(stored["item_ids"]) == _dev_ids(project) and len(stored["predicted"]) == len(stored["item_ids"])
    class_ids = {c["id"] for c in version.snapshot.classes}
    assert set(stored["label"]) <= class_ids and stored["majority"] in class_ids
    assert "predictions" not in version.metrics  # kept out of the metrics every list page reads


def test_a_keras_model_on_the_demo_digits_records_its_curves_and_live_loss(project, holdout):
    add_digit_items(project, 45)
    version = trained(project, "keras_cnn", epochs=4, image_size=16, filters=8, batch_size=16, augment=0.0)
    history = version.metrics["history"]
    assert history["kind"] == "epochs" and history["points"] == list(range(1, version.epoch + 1))
    for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
        assert len(history["series"][key]) == version.epoch and all(v is not None for v in history["series"][key])
    assert history["series"]["learning_rate"] == pytest.approx([1e-3] * version.epoch)
    assert history["best"]["val_loss"] == min(history["series"]["val_loss"])
    stop = history["early_stopping"]
    assert stop["patience"] == 8 and stop["fired"] is False and stop["restored_epoch"] == history["best"]["x"]
    # The last progress write carried the last epoch's losses to the progress bar.
    assert version.loss == pytest.approx(history["series"]["loss"][-1])
    assert version.val_loss == pytest.approx(history["series"]["val_loss"][-1])
    payload = services.progress_payload(version)
    assert payload["loss"] == version.loss and payload["val_loss"] == version.val_loss


EPOCHS = 30


def test_an_oversized_keras_model_trained_long_shows_validation_loss_rising_after_its_marked_minimum(project, holdout):
    """75 digits at 8x8 pixels, 30 of them mislabelled (items 45-74 carry the next class),
    64 filters, no dropout or augmentation, a high learning rate and no early stopping: the
    network memorises the training labels and its dev loss climbs past its minimum."""
    add_digit_items(project, 45)
    add_digit_items(project, 30, start=45, classes=_rotated(project))
    version = trained(
        project, "keras_cnn", epochs=EPOCHS, patience=100, image_size=8, filters=64, dropout=0.0, augment=0.0,
        learning_rate=0.01, batch_size=8,
    )  # fmt: skip
    history = version.metrics["history"]
    val = history["series"]["val_loss"]
    best = history["best"]
    assert len(val) == EPOCHS and best["val_loss"] == min(val) and val[best["index"]] == best["val_loss"]
    assert best["index"] < len(val) - 1, "the minimum is not the last epoch"
    assert val[-1] > best["val_loss"] * 1.25, f"validation loss did not rise after its minimum: {val}"
    assert history["early_stopping"]["fired"] is False
    # The training loss kept falling meanwhile: over-fitting, not a failed optimisation.
    assert history["series"]["loss"][-1] < history["series"]["loss"][best["index"]]


# --------------------------------------------------------------------------------------------
# Versions side by side
# --------------------------------------------------------------------------------------------


def _rotated(project, k=1):
    classes = list(project.label_classes.filter(is_ambiguity=False).order_by("order")[:3])
    return classes[k:] + classes[:k]


@pytest.fixture
def two_versions(project, holdout):
    """``good`` learns 60 correctly labelled digits; then 90 more arrive labelled with the next
    class, and ``weak`` learns mostly that wrong mapping: on the 12 dev items both saw with the
    same label, it is wrong where ``good`` is right."""
    add_digit_items(project, 60)
    good = trained(project)
    add_digit_items(project, 90, start=60, classes=_rotated(project))
    weak = trained(project)
    return good, weak


def _by_hand(a, b):
    """The 2x2 table of two versions joined on item id by plain Python, the reference for the API."""
    pa = dict(
        zip(
            a.predictions["item_ids"], zip(a.predictions["predicted"], a.predictions["label"], strict=True), strict=True
        )
    )
    pb = dict(
        zip(
            b.predictions["item_ids"], zip(b.predictions["predicted"], b.predictions["label"], strict=True), strict=True
        )
    )
    table = np.zeros((2, 2), dtype=int)
    for item, (pred_a, truth) in pa.items():
        if item in pb and pb[item][1] == truth:
            table[int(pred_a != truth), int(pb[item][0] != truth)] += 1
    return table


def test_the_compare_api_pairs_versions_with_mcnemar_equal_to_statsmodels(api_as, project, mle, sme, two_versions):
    good, weak = two_versions
    url = reverse("training_api:project-models-compare", args=[project.pk])
    response = api_as(sme).get(url, {"v": [weak.short_id, good.short_id]})
    assert response.status_code == 200, response.data
    body = response.json()
    assert body["reference"] == weak.short_id and [v["id"] for v in body["versions"]] == [weak.short_id, good.short_id]
    pair = body["pairs"][0]
    table = _by_hand(weak, good)
    assert pair["available"] and pair["table"] == table.tolist() and pair["n"] == table.sum()
    assert pair["pvalue"] == pytest.approx(sm_mcnemar(table, exact=pair["discordant"] < 25, correction=True).pvalue)
    assert pair["difference"] == pytest.approx((table[0, 0] + table[1, 0] - table[0, 0] - table[0, 1]) / table.sum())
    assert pair["better"] == "b" and pair["beyond_noise"]
    assert {r["name"] for r in body["classes"]} == {c["name"] for c in good.snapshot.classes}
    assert body["versions"][1]["history"]["kind"] == "regularisation"
    assert body["slices"] and all(len(r["accuracy"]) == 2 for r in body["slices"])


def test_the_compare_api_refuses_bad_picks_naming_v_and_hides_other_projects(
    api_as, project, mle, labeler, outsider, other_project, two_versions
):
    good, weak = two_versions
    url = reverse("training_api:project-models-compare", args=[project.pk])
    query = {"v": [good.short_id, weak.short_id]}
    assert api_as(outsider).get(url, query).status_code == 404
    assert api_as(labeler).get(url, query).status_code == 404
    for bad in ({"v": [good.short_id]}, {}, {"v": [good.short_id, "nope1234"]}, {"v": [good.short_id] * 2}):
        response = api_as(mle).get(url, bad)
        assert response.status_code == 400 and "v" in response.data, bad
    training = ModelVersion.objects.create(project=project, trainer="sklearn_logreg")
    response = api_as(mle).get(url, {"v": [good.short_id, training.short_id]})
    assert response.status_code == 400 and "not ready" in response.data["v"][0]
    other_url = reverse("training_api:project-models-compare", args=[other_project.pk])
    assert api_as(mle).get(other_url, query).status_code == 404


def test_a_version_without_stored_predictions_says_retrain_to_compare(project, two_versions):
    good, weak = two_versions
    ModelVersion.objects.filter(pk=weak.pk).update(predictions={})
    weak.refresh_from_db()
    pair = side_by_side.pair(weak, good)
    assert pair["available"] is False and "retrain to compare" in pair["reason"]
    # Promotion then judges by the headline figures: no higher than the current model is a concern...
    concerns = side_by_side.verdict(weak, good)["concerns"]
    assert any("does not beat the current model" in c and "headline" in c for c in concerns)
    # ...a higher one only a note that the test could not run.
    ModelVersion.objects.filter(pk=good.pk).update(predictions={})
    good.refresh_from_db()
    verdict = side_by_side.verdict(good, weak)
    assert verdict["concerns"] == [] and any("retrain to compare" in n for n in verdict["notes"])


def test_the_compare_page_for_each_role(client, project, mle, sme, labeler, outsider, two_versions):
    good, weak = two_versions
    url = reverse("training:model-compare", args=[project.slug])
    query = f"?v={weak.short_id}&v={good.short_id}"
    client.force_login(outsider)
    assert client.get(url + query).status_code == 404
    client.force_login(labeler)
    assert client.get(url + query).status_code == 403
    client.force_login(sme)
    page = client.get(url + query)
    assert page.status_code == 200
    html = page.content.decode()
    pair = side_by_side.pair(weak, good)
    assert f'data-pair="{good.short_id}"' in html and "better, beyond noise" in html
    assert f"{pair['pvalue']:.4g}"[:4] in html or "0.0" in html
    assert 'data-chart="compare-loss"' in html and 'data-chart="compare-calibration"' in html
    assert client.get(url + f"?v={good.short_id}").status_code == 400
    assert client.get(url).status_code == 200  # the picker alone


# --------------------------------------------------------------------------------------------
# Baselines that speak
# --------------------------------------------------------------------------------------------


def test_promotion_needs_a_reason_when_the_model_does_not_beat_the_current_one_beyond_noise(
    api_as, project, mle, holdout
):
    add_digit_items(project, 60)
    first = trained(project, C=0.05)
    assert side_by_side.verdict(first)["concerns"] == []  # beats the majority class beyond noise
    services.promote(first, user=mle)
    same = trained(project, C=0.04)  # all but the same model: right on the same items, never beyond noise
    concerns = side_by_side.verdict(same, first)["concerns"]
    assert len(concerns) == 1 and "does not beat the current model" in concerns[0]
    with pytest.raises(services.TrainingError) as refused:
        services.promote(same, user=mle)
    assert refused.value.field == "note" and "reason" in refused.value.message
    url = reverse("training_api:model-promote", args=[same.short_id])
    response = api_as(mle).post(url, {"note": "  "}, format="json")
    assert response.status_code == 400 and "reason is required" in response.data["note"][0]
    assert ModelVersion.objects.get(is_promoted=True) == first  # nothing half-done
    response = api_as(mle).post(url, {"note": "same accuracy, cheaper to serve"}, format="json")
    assert response.status_code == 200 and response.data["promotion"]["note"] == "same accuracy, cheaper to serve"
    assert Promotion.objects.filter(model_version=same).get().note == "same accuracy, cheaper to serve"


def test_a_model_no_better_than_the_majority_class_is_promoted_only_with_a_reason(project, mle, holdout):
    for k, start in enumerate((0, 30, 60)):  # every digit carries each class equally often: nothing to learn
        add_digit_items(project, 30, start=start, classes=_rotated(project, k))
    weak = trained(project)
    verdict = side_by_side.verdict(weak)
    assert verdict["majority"]["available"] and verdict["majority"]["better"] != "b"
    assert "majority-class baseline" in verdict["concerns"][0]
    with pytest.raises(services.TrainingError):
        services.promote(weak, user=mle)
    assert services.promote(weak, user=mle, note="a placeholder until more labels come").note


def test_the_model_page_draws_the_curves_and_says_what_the_baselines_say(client, project, mle, holdout):
    add_digit_items(project, 60)
    first = trained(project, C=0.05)
    services.promote(first, user=mle)
    same = trained(project, C=0.04)
    client.force_login(mle)
    html = client.get(reverse("training:model-detail", args=[project.slug, same.short_id])).content.decode()
    assert 'data-chart="loss-curve"' in html and 'data-mark="best"' in html and 'data-mark="chosen"' in html
    assert "does not beat the current model" in html and "data-confirm-concerns=" in html
    assert f"?v={first.short_id}&amp;v={same.short_id}" in html  # compare with the current model
    # The page's promote form refuses without a reason and says why.
    url = reverse("training:model-promote", args=[project.slug, same.short_id])
    page = client.post(url, {"note": ""}, follow=True).content.decode()
    assert "A reason is required" in page and not ModelVersion.objects.get(pk=same.pk).is_promoted
    client.post(url, {"note": "ok"})
    assert ModelVersion.objects.get(pk=same.pk).is_promoted
