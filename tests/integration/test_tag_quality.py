"""Tags as slices of the label-quality report, and HLP against gold and against SME resolutions
apart (with the resolving SME's own label left out), on a hand-built project with hand-computed
figures; and the quality page showing both (tag names escaped)."""

import numpy as np
import pytest
from django.urls import reverse

from annotation.intervals import clustered_wilson_interval
from annotation.services import adjudication, tags
from annotation.services.quality import build_report, fingerprint
from tests.integration.test_adjudication import add_item, label

pytestmark = pytest.mark.django_db

XSS = "<script>alert(1)</script>"


@pytest.fixture
def board(project, labeler, labeler2, sme):
    """Five items (gold on i1, i2; SME resolutions on i3, i4, where the SME labelled too):

    item  truth            lab1  lab2  sme   tags
    i1    gold crow        crow  dove        blurry
    i2    gold dove        dove  dove        blurry
    i3    resolution crow  crow  dove  crow
    i4    resolution owl   dove        owl   blurry
    i5    none             crow  crow        <script>
    """
    i1 = add_item(project, "i1", gold="crow", metadata={"noise": "car"})
    i2 = add_item(project, "i2", gold="dove", metadata={"noise": "car"})
    i3 = add_item(project, "i3", metadata={"noise": "car"})
    i4 = add_item(project, "i4")
    i5 = add_item(project, "i5")
    for item, votes in (
        (i1, {labeler: "crow", labeler2: "dove"}),
        (i2, {labeler: "dove", labeler2: "dove"}),
        (i3, {labeler: "crow", labeler2: "dove", sme: "crow"}),
        (i4, {labeler: "dove", sme: "owl"}),
        (i5, {labeler: "crow", labeler2: "crow"}),
    ):
        for user, name in votes.items():
            label(item, user, name)
    adjudication.resolve(project, i3.pk, sme, labels=["crow"])
    adjudication.resolve(project, i4.pk, sme, labels=["owl"])
    tags.tag_items(project, sme, [i1.pk, i2.pk, i4.pk], name="blurry")
    tags.tag_items(project, sme, [i5.pk], name=XSS)
    return i1, i2, i3, i4, i5


def _slice(report, key):
    return next(s for s in report["slices"] if s["key"] == key)


def test_every_tag_is_a_slice_with_exact_figures(project, board):
    report = build_report(project)
    blurry = _slice(report, "tag:blurry")
    assert [v["value"] for v in blurry["values"]] == ["yes"]
    row = blurry["values"][0]
    # i1: crow right, dove wrong; i2: both right; i4 (truth owl): dove wrong, owl right.
    assert (row["items"], row["labels"], row["scored"], row["correct"]) == (3, 6, 6, 4)
    assert row["accuracy"] == pytest.approx(4 / 6)
    # A tag on one item is shown (every tag is); metadata keeps its floor of 20 items.
    script = _slice(report, f"tag:{XSS}")
    assert script["values"][0]["items"] == 1 and script["values"][0]["scored"] == 0
    noise = _slice(report, "noise")
    assert noise["values"] == [] and noise["values_below_min_items"] == 1


def test_hlp_against_gold_and_resolutions_apart_without_the_smes_own_label(project, board):
    by = build_report(project)["hlp_by_source"]
    gold, res = by["gold"], by["resolution"]
    # Gold: i1 (right, wrong), i2 (right, right): 3 of 4 labels on 2 items.
    assert (gold["correct"], gold["scored_labels"], gold["scored_items"], gold["items"]) == (3, 4, 2, 2)
    assert gold["accuracy"] == pytest.approx(0.75)
    expected = clustered_wilson_interval(np.array([1, 0, 1, 1]), np.array([0, 0, 1, 1]))
    assert (gold["ci_low"], gold["ci_high"]) == pytest.approx((expected["ci_low"][0], expected["ci_high"][0]))
    # Resolutions: i3 lab1 right, lab2 wrong (the SME's crow left out); i4 lab1 wrong (the SME's owl left out).
    assert (res["correct"], res["scored_labels"], res["scored_items"], res["own_labels_excluded"]) == (1, 3, 2, 2)
    assert res["accuracy"] == pytest.approx(1 / 3)
    expected = clustered_wilson_interval(np.array([1, 0, 0]), np.array([0, 0, 1]))
    assert (res["ci_low"], res["ci_high"]) == pytest.approx((expected["ci_low"][0], expected["ci_high"][0]))
    assert "disagreed" in by["note"]


def test_a_tag_change_makes_the_report_stale(project, board, sme):
    before = fingerprint(project)
    tags.tag_items(project, sme, [board[2].pk], name="blurry")
    assert fingerprint(project) != before


def test_quality_page_shows_tag_slices_and_hlp_by_source(project, board, client, sme):
    client.force_login(sme)
    page = client.get(reverse("quality:dashboard", args=[project.slug])).content.decode()
    assert 'data-tag="blurry"' in page and 'fill="#' in page
    assert XSS not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'data-testid="hlp-by-source"' in page
    assert "75.0%" in page and "33.3%" in page
    assert "2 labels by the resolving SME not scored" in page


def test_quality_api_carries_tag_slices_and_hlp_by_source(project, board, api_as, sme, labeler):
    url = reverse("api:project-quality", args=[project.pk])
    body = api_as(sme).get(url).json()
    assert body["hlp_by_source"]["resolution"]["own_labels_excluded"] == 2
    assert "tag:blurry" in {s["key"] for s in body["slices"]}
    assert api_as(labeler).get(url).status_code == 404  # tags and all: not for labelers
