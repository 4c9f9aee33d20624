"""The error model on the cycle page: a real cycle keeps the model's prediction and the error
model's chance of "wrong" for every item of its batch, and the next cycle's page scores them
against the labels given since (precision of "predicted wrong"); the fallback reason is shown."""

import numpy as np
import pytest

from active_learning import error_report, services
from active_learning.models import Cycle
from annotation.models import Item

from .test_cycle_pages import run_cycle, urls
from .training_data import label, resolve

# What queue_step writes on every finished cycle (the page reads it).
BATCH_FACTS = {
    "selected": 0, "skipped": 0, "superseded_entries": 0, "by_strategy": {}, "review_requests": 0,
    "labels": None, "accuracy": None, "evaluated_on": None,
}  # fmt: skip


@pytest.mark.django_db
def test_a_cycle_keeps_predictions_for_its_batch_and_the_page_shows_the_error_model(client, al_project, mle):
    cycle = run_cycle(al_project, mle, strategy="error_model", batch_size=10)
    summary = cycle.summary
    selected = {s.item_id for s in cycle.selections.all()}
    assert {int(k) for k in summary["predictions"]} == selected
    class_ids = {c["id"] for c in cycle.model_version.snapshot.classes}
    assert all(class_id in class_ids for class_id, *_ in summary["predictions"].values())
    # The model's uncertainty then (margin, entropy, top probability): later cycles learn from it.
    assert all(len(u) == 3 and 0 <= u[0] <= u[2] <= 1 for *_, u in summary["predictions"].values())
    report = summary["error_model"]
    assert report["n_wrong"] + report["n_right"] > 0 and summary["selected"] == 10  # write_batch's facts kept
    chances = [chance for _, chance, _ in summary["predictions"].values()]
    if report["fallback"]:
        assert all(chance is None for chance in chances) and "margin" in report["fallback"]
    else:
        assert all(0 <= chance <= 1 for chance in chances)
    client.force_login(mle)
    page = client.get(urls(al_project, cycle.number)["detail"]).content.decode()
    assert 'data-testid="error-model-own"' in page
    assert ("fell back to margin" in page) == bool(report["fallback"])


@pytest.mark.django_db
def test_the_next_cycle_page_scores_the_previous_batch_against_the_labels_given_since(
    client, al_project, mle, labeler, labeler2
):
    first, second, third = list(al_project.label_classes.filter(is_ambiguity=False).order_by("order")[:3])
    items = list(Item.objects.filter(project=al_project, gold__isnull=True).order_by("pk")[:7])
    # Cycle 1's stored predictions: the model said `first` for all; the error model flagged the first four.
    chances = [0.9, 0.8, 0.7, 0.6, 0.2, 0.1, 0.4]
    predictions = {str(item.pk): [first.pk, chance] for item, chance in zip(items, chances, strict=True)}
    Cycle.objects.create(
        project=al_project, number=1, strategy="error_model", batch_size=7, trainer="sklearn_logreg",
        status="done", stage="done",
        summary={**BATCH_FACTS, "predictions": predictions, "error_model": {"fallback": None}},
    )  # fmt: skip
    label(items[0], labeler, second)  # flagged, wrong
    label(items[1], labeler, first)  # flagged, right
    label(items[2], labeler, third)  # flagged: one vote each way, a tie; the SME's resolution decides: wrong
    label(items[2], labeler2, first)
    resolve(items[2], third, user=mle)
    label(items[4], labeler, second)  # not flagged, wrong
    label(items[5], labeler, first)  # not flagged, right
    # items[3] and items[6] are not labelled yet.
    cycle = Cycle.objects.create(
        project=al_project, number=2, strategy="mix", batch_size=5, trainer="sklearn_logreg", status="done",
        stage="done",
        summary={**BATCH_FACTS, "error_model": {"fallback": "only 2 of 40 held-out items were wrong (fewer than 3)"}},
    )  # fmt: skip

    previous = error_report.cycle_report(cycle)["previous"]
    assert previous == {
        "number": 1, "used": {"fallback": None}, "batch": 7, "labelled": 5, "wrong": 3, "error_rate": 3 / 5,
        "flagged": 3, "flagged_wrong": 2, "precision": 2 / 3, "recall": 2 / 3,
    }  # fmt: skip
    client.force_login(mle)
    page = client.get(urls(al_project, 2)["detail"]).content.decode()
    assert "5 of 7 items labelled since" in page and 'data-testid="error-model-precision">67%' in page
    assert "only 2 of 40 held-out items were wrong" in page and "fell back to margin" in page


@pytest.mark.django_db
def test_the_next_cycle_learns_from_the_earlier_picks_labelled_since(client, al_project, mle, labeler):
    """Cycle 1's batch, labelled, is held-out for cycle 2's error model: each item as cycle 1's
    model scored it (its stored uncertainty) and whether that model's class was wrong."""
    first = run_cycle(al_project, mle, strategy="error_model", batch_size=10)
    classes = {c.pk: c for c in al_project.label_classes.all()}
    picks = list(first.summary["predictions"].items())
    for n, (key, (class_id, _, _)) in enumerate(picks[:6]):  # 6 labelled: 3 as predicted, 3 otherwise
        other = next(c for pk, c in classes.items() if pk != class_id and not c.is_ambiguity)
        label(Item.objects.get(pk=int(key)), labeler, classes[class_id] if n % 2 else other)

    second = services.launch(al_project, user=mle, enqueue=False, strategy="error_model", batch_size=5)
    ids, uncertainty, wrong = error_report.labelled_earlier_picks(second)
    assert sorted(ids.tolist()) == sorted(int(k) for k, _ in picks[:6])
    stored = {int(k): v for k, v in picks}
    np.testing.assert_allclose(uncertainty, [stored[i][2] for i in ids.tolist()])
    assert wrong.sum() == 3 and wrong.tolist() == [i in {int(k) for k, _ in picks[:6:2]} for i in ids.tolist()]
    for step in services.STEPS:
        step(second.pk)
    second.refresh_from_db()
    assert second.status == "done", second.error
    report = second.summary["error_model"]
    # The 3 wrong earlier picks alone are enough errors to learn from; whether it is used is the
    # check against margin's, shown either way.
    assert report["n_earlier"] == 6 and report["n_wrong"] >= 3 and report["auc"] is not None
    assert (report["fallback"] is None) == (report["auc"] > report["margin_auc"])
    client.force_login(mle)
    page = client.get(urls(al_project, 2)["detail"]).content.decode()
    assert "6 of them earlier batches' items" in page
    if report["fallback"]:
        assert "no better than margin" in page and "fell back to margin" in page
    else:
        assert "it finds them better than margin does" in page


@pytest.mark.django_db
def test_the_error_model_card_is_staff_only_and_scoped_to_the_project(client, al_project, labeler, outsider):
    Cycle.objects.create(
        project=al_project, number=1, strategy="error_model", batch_size=1, trainer="sklearn_logreg",
        status="done", stage="done",
        summary={**BATCH_FACTS, "error_model": {"fallback": "the model was right on all 9"}},
    )  # fmt: skip
    url = urls(al_project, 1)["detail"]
    for user, code in [(outsider, 404), (labeler, 403)]:
        client.force_login(user)
        assert client.get(url).status_code == code
