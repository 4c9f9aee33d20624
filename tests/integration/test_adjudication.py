"""SME adjudication against the real database: the disagreement queue, resolutions, send-back,
class operations (merge/rename/add/deactivate with their audit rows), guidelines, the API's
permissions and bad input, and XSS on what SMEs read."""

import random
import threading

import pytest
from django.db import connection
from django.urls import reverse

from annotation.errors import DomainError
from annotation.models import (
    Annotation,
    AnnotationLabel,
    Assignment,
    ClassOperation,
    GoldLabel,
    GoldLabelClass,
    Guideline,
    GuidelineNote,
    Item,
    LabelClass,
    Resolution,
    ResolutionLabel,
    ReviewRequest,
)
from annotation.services import adjudication, guidelines, labeling
from annotation.services.labeling import Conflict
from annotation.services.quality import build_report
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


# ---- Helpers ---------------------------------------------------------------------------------------


def cls(project, name):
    return LabelClass.objects.get(project=project, name=name)


def add_item(project, name, *, sample=True, metadata=None, gold=None):
    item = Item.objects.create(
        project=project, external_id=name, split="train", in_consistency_sample=sample, metadata=metadata or {}
    )
    if gold:
        g = GoldLabel.objects.create(item=item)
        GoldLabelClass.objects.create(gold=g, label_class=cls(project, gold))
    return item


def label(item, user, name, *, unsure=False, note=""):
    a = Annotation.objects.create(item=item, labeler=user, unsure=unsure, note=note)
    AnnotationLabel.objects.create(annotation=a, label_class=cls(item.project, name))
    Assignment.objects.update_or_create(
        item=item, labeler=user, defaults={"status": "done", "expires_at": "2030-01-01T00:00:00Z"}
    )
    return a


@pytest.fixture
def labeler3(project):
    from annotation.models import Membership

    user = make_user("lab3")
    Membership.objects.create(user=user, project=project, role="labeler")
    return user


@pytest.fixture
def board(project, labeler, labeler2, labeler3):
    """Items covering every reason; overlap is 3."""
    a = add_item(project, "disagree", metadata={"noise": "car"})
    for u, n in ((labeler, "crow"), (labeler2, "crow"), (labeler3, "dove")):
        label(a, u, n)
    b = add_item(project, "unanimous")
    for u in (labeler, labeler2, labeler3):
        label(b, u, "crow")
    c = add_item(project, "unsure", sample=False)
    label(c, labeler, "owl", unsure=True, note="<img src=x onerror=alert(1)>")
    d = add_item(project, "ambig", sample=False)
    label(d, labeler, "unclear")
    e = add_item(project, "goldwrong", gold="crow")
    for u, n in ((labeler, "dove"), (labeler2, "dove"), (labeler3, "crow")):
        label(e, u, n)
    f = add_item(project, "review", sample=False)
    ReviewRequest.objects.create(item=f, reason="model confidently wrong")
    g = add_item(project, "incomplete")  # needs 3, has 2 that disagree: not yet in the queue
    label(g, labeler, "crow")
    label(g, labeler2, "owl")
    labeling.refresh_queue_state(project)
    return {x.external_id: x for x in (a, b, c, d, e, f, g)}


# ---- The queue ---------------------------------------------------------------------------------------


def test_queue_reasons_counts_sort_and_filters(project, board):
    q = adjudication.disagreement_queue(project)
    reasons = {r.external_id: r.reasons for r in q.rows}
    assert reasons == {
        "disagree": ["disagreement"],
        "unsure": ["unsure"],
        "ambig": ["ambiguity"],
        "goldwrong": ["disagreement", "gold_wrong"],
        "review": ["review"],
    }
    assert q.counts == {"disagreement": 2, "unsure": 1, "ambiguity": 1, "gold_wrong": 1, "review": 1}
    entropies = [r.entropy for r in q.rows]
    assert entropies == sorted(entropies, reverse=True)
    assert entropies[0] > 0
    assert [r.external_id for r in adjudication.disagreement_queue(project, reason="unsure").rows] == ["unsure"]
    pair = adjudication.disagreement_queue(project, pair="crow,dove")
    assert {r.external_id for r in pair.rows} == {"disagree", "goldwrong"}
    assert [r.external_id for r in adjudication.disagreement_queue(project, slice="noise=car").rows] == ["disagree"]
    for kwargs, field in (
        ({"reason": "nope"}, "reason"),
        ({"pair": "crow"}, "pair"),
        ({"pair": "crow,pos"}, "pair"),
        ({"slice": "noise"}, "slice"),
    ):
        with pytest.raises(DomainError) as err:
            adjudication.disagreement_queue(project, **kwargs)
        assert err.value.field == field


def test_the_queue_filters_by_a_tag_as_by_a_slice(project, board, sme):
    from annotation.models import ItemTag, Tag

    blurry = Tag.objects.create(project=project, name="Blurry")
    for name in ("unsure", "review", "incomplete"):  # "incomplete" is tagged but not in the queue
        ItemTag.objects.create(tag=blurry, item=board[name], added_by=sme)
    rows = adjudication.disagreement_queue(project, slice="tag:blurry=yes").rows
    assert {r.external_id for r in rows} == {"unsure", "review"}
    assert adjudication.disagreement_queue(project, slice="tag:blurry=yes").counts["unsure"] == 1
    for slice_, message in (("tag:dark=yes", "'dark' is not a tag"), ("tag:blurry=no", "tag:blurry=yes")):
        with pytest.raises(DomainError) as err:
            adjudication.disagreement_queue(project, slice=slice_)
        assert err.value.field == "slice" and message in err.value.message


# ---- Resolutions ---------------------------------------------------------------------------------------


def test_resolve_keeps_history_closes_reviews_and_leaves_queue(project, board, sme, mle):
    item = board["review"]
    first = adjudication.resolve(project, item.pk, sme, labels=["owl"], expected_current=None)
    assert ReviewRequest.objects.get(item=item).resolved_at is not None
    second = adjudication.resolve(project, item.pk, mle, ambiguous=True, expected_current=first.pk)
    rows = list(Resolution.objects.filter(item=item).order_by("pk"))
    assert [(r.pk, r.is_current) for r in rows] == [(first.pk, False), (second.pk, True)]
    assert second.is_ambiguous and not ResolutionLabel.objects.filter(resolution=second).exists()
    assert "review" not in {r.external_id for r in adjudication.disagreement_queue(project).rows}


def test_two_smes_resolving_at_once_conflict_and_write_nothing(project, board, sme, mle):
    item = board["disagree"]
    # Both SMEs loaded the item while it had no resolution; the second to commit is refused.
    adjudication.resolve(project, item.pk, sme, labels=["crow"], expected_current=None)
    with pytest.raises(Conflict) as err:
        adjudication.resolve(project, item.pk, mle, labels=["dove"], expected_current=None)
    assert err.value.field == "expected_current"
    assert Resolution.objects.filter(item=item).count() == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="threads need PostgreSQL; SQLite serialises writers")
@pytest.mark.django_db(transaction=True)
def test_two_smes_in_threads_one_wins_one_gets_409(project, sme, mle, api_as):
    item = add_item(project, "contested")
    url = reverse("api:resolution-create", args=[project.pk])
    start = threading.Barrier(2)
    codes = {}

    def work(user, name):
        try:
            client = api_as(user)
            start.wait()
            body = {"item": item.pk, "labels": [name], "expected_current": None}
            codes[user.pk] = client.post(url, body, format="json").status_code
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=a) for a in ((sme, "crow"), (mle, "dove"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(codes.values()) == [201, 409]
    assert Resolution.objects.filter(item=item).count() == 1


def test_resolve_bad_input_writes_nothing(project, other_project, board, sme):
    item = board["disagree"]
    other_item = add_item(other_project, "x")
    cls(project, "owl").__class__.objects.filter(project=project, name="owl").update(is_active=False)
    cases = [
        ({"labels": ["pos"]}, "labels"),  # a class of another project
        ({"labels": ["owl"]}, "labels"),  # inactive
        ({"labels": ["crow", "dove"]}, "labels"),  # single-label project
        ({"labels": []}, "labels"),
        ({"labels": ["crow"], "ambiguous": True}, "labels"),
        ({"labels": ["crow"], "note": "x" * 6000}, "note"),
    ]
    for kwargs, field in cases:
        with pytest.raises(DomainError) as err:
            adjudication.resolve(project, item.pk, sme, **kwargs)
        assert err.value.field == field, kwargs
    with pytest.raises(DomainError) as err:
        adjudication.resolve(project, other_item.pk, sme, labels=["crow"])
    assert err.value.field == "item"
    assert not Resolution.objects.exists()


def test_resolution_becomes_ground_truth_for_hlp(project, board, sme):
    before = build_report(project)["counts"]["resolution_items"]
    adjudication.resolve(project, board["disagree"].pk, sme, labels=["dove"])
    report = build_report(project)
    assert report["counts"]["resolution_items"] == before + 1
    assert report["counts"]["truth_items"] >= 2  # the gold item and the resolved one
    # Ambiguous resolutions are not ground truth.
    adjudication.resolve(project, board["unsure"].pk, sme, ambiguous=True)
    assert build_report(project)["counts"]["resolution_items"] == before + 1


# ---- Send back ------------------------------------------------------------------------------------------


def test_send_back_requeues_for_k_fresh_labels(project, board, sme, labeler, labeler2, labeler3):
    item = board["disagree"]
    old = set(Annotation.objects.filter(item=item).values_list("pk", flat=True))
    assert adjudication.send_back(project, item.pk, sme) == 3
    assert not Annotation.objects.filter(item=item, is_current=True).exists()
    assert set(Annotation.objects.filter(item=item).values_list("pk", flat=True)) == old  # history kept
    assert not Assignment.objects.filter(item=item).exists()
    item.refresh_from_db()
    assert not item.queue_done
    for n, user in enumerate((labeler, labeler2, labeler3)):
        served = labeling.next_item(project, user)
        assert served.item.pk == item.pk
        labeling.submit(
            project, user, item_id=item.pk, labels=["owl"], client_id=f"00000000-0000-0000-0000-00000000000{n}"
        )
    item.refresh_from_db()
    assert item.queue_done
    assert Annotation.objects.filter(item=item, is_current=True).count() == 3
    assert "disagree" not in {r.external_id for r in adjudication.disagreement_queue(project).rows}


# ---- Class operations ---------------------------------------------------------------------------------


def swapped_project(project, users, rng):
    """30 items; crow and dove items are labelled crow or dove at random, owl items owl."""
    truth = ["crow", "dove", "owl"] * 10
    for i, t in enumerate(truth):
        item = add_item(project, f"s{i}")
        for u in users:
            label(item, u, t if t == "owl" else rng.choice(["crow", "dove"]))
    return Item.objects.filter(project=project, external_id__startswith="s")


def test_merge_remaps_every_record_and_raises_agreement(project, labeler, labeler2, labeler3, sme, mle):
    items = list(swapped_project(project, [labeler, labeler2, labeler3], random.Random(7)))
    crow, dove = cls(project, "crow"), cls(project, "dove")
    g = GoldLabel.objects.create(item=items[0])
    GoldLabelClass.objects.create(gold=g, label_class=dove)
    r = adjudication.resolve(project, items[1].pk, sme, labels=["crow"])
    old_annotation = Annotation.objects.filter(item=items[3], labeler=labeler).get()
    Annotation.objects.filter(pk=old_annotation.pk).update(is_current=False)  # history row
    label(items[3], labeler, "dove")

    preview = adjudication.merge_preview(project, sources=[crow.pk, dove.pk], new_target="corvid")
    assert preview["alpha_before"] < preview["alpha_after"]
    moving = AnnotationLabel.objects.filter(label_class__in=[crow, dove]).count()
    assert preview["moves"]["annotation_labels"] == moving
    assert preview["moves"]["gold_labels"] == 1 and preview["moves"]["resolution_labels"] == 1
    assert not LabelClass.objects.filter(name="corvid").exists()  # a preview writes nothing

    op = adjudication.merge(project, mle, sources=[crow.pk, dove.pk], new_target="corvid")
    corvid = cls(project, "corvid")
    assert op.details["alpha_before"] < op.details["alpha_after"]
    assert op.actor == mle and op.operation == "merge"
    assert op.before["crow"]["annotation_labels"] > 0 and op.after["crow"]["annotation_labels"] == 0
    assert op.after["corvid"]["annotation_labels"] == moving
    assert not AnnotationLabel.objects.filter(label_class__in=[crow, dove]).exists()
    for model in (AnnotationLabel, GoldLabelClass, ResolutionLabel):
        rows = model.objects.filter(label_class=corvid)
        assert rows.exists()
        assert set(rows.values_list("original_label_class", flat=True)) <= {crow.pk, dove.pk}
    assert GoldLabelClass.objects.get(gold=g).original_label_class == dove
    assert ResolutionLabel.objects.get(resolution=r).original_label_class == crow
    history = AnnotationLabel.objects.get(annotation=old_annotation)  # not current: remapped too
    assert history.label_class == corvid
    for c in (crow, dove):
        c.refresh_from_db()
        assert not c.is_active and c.merged_into == corvid
    with pytest.raises(DomainError):  # nobody labels with a merged class any more
        labeling.classes_for(project, ["crow"])


def test_merge_into_existing_class_keeps_history_across_two_merges(project, labeler, mle):
    item = add_item(project, "one")
    label(item, labeler, "crow")
    crow, dove, owl = cls(project, "crow"), cls(project, "dove"), cls(project, "owl")
    adjudication.merge(project, mle, sources=[crow.pk], target=dove.pk)
    adjudication.merge(project, mle, sources=[dove.pk], target=owl.pk)
    row = AnnotationLabel.objects.get(annotation__item=item)
    assert (row.label_class, row.original_label_class) == (owl, crow)
    crow.refresh_from_db()
    assert crow.merged_into == owl
    assert ClassOperation.objects.filter(project=project, operation="merge").count() == 2


def test_merge_refusals_write_nothing(project, other_project, labeler, mle):
    item = add_item(project, "one")
    label(item, labeler, "crow")
    crow, dove, owl = cls(project, "crow"), cls(project, "dove"), cls(project, "owl")
    pos = cls(other_project, "pos")
    LabelClass.objects.filter(pk=owl.pk).update(is_active=False)
    cases = [
        ({"sources": [crow.pk], "target": crow.pk}, "target"),  # into itself
        ({"sources": [crow.pk], "target": owl.pk}, "target"),  # into an inactive class
        ({"sources": [owl.pk], "target": crow.pk}, "sources"),  # an inactive source
        ({"sources": [crow.pk], "target": pos.pk}, "target"),  # across projects
        ({"sources": [pos.pk], "target": crow.pk}, "sources"),
        ({"sources": [], "target": crow.pk}, "sources"),
        ({"sources": [crow.pk, crow.pk], "target": dove.pk}, "sources"),
        ({"sources": [crow.pk, dove.pk]}, "target"),
        ({"sources": [crow.pk, dove.pk], "target": owl.pk, "new_target": "x"}, "target"),
        ({"sources": [crow.pk, dove.pk], "new_target": "unclear"}, "new_target"),  # name taken
        ({"sources": [crow.pk, dove.pk], "new_target": "  "}, "new_target"),
        ({"sources": ["x"], "target": dove.pk}, "sources"),
    ]
    for kwargs, field in cases:
        with pytest.raises(DomainError) as err:
            adjudication.merge(project, mle, **kwargs)
        assert err.value.field == field, kwargs
    assert not ClassOperation.objects.exists()
    assert AnnotationLabel.objects.get().label_class == crow
    assert LabelClass.objects.filter(project=project, merged_into__isnull=False).count() == 0


def test_rename_add_deactivate_are_audited(project, labeler, mle):
    item = add_item(project, "one")
    label(item, labeler, "crow")
    crow = cls(project, "crow")
    op = adjudication.rename_class(project, mle, class_id=crow.pk, name="raven")
    assert op.before["crow"]["annotation_labels"] == 1 and op.after["raven"]["annotation_labels"] == 1
    new, op = adjudication.add_class(project, mle, name="borderline", is_ambiguity=True)
    assert new.is_ambiguity and new.is_active and new.shortcut
    assert "borderline" in op.after and "borderline" not in op.before
    op = adjudication.deactivate_class(project, mle, class_id=crow.pk)
    crow.refresh_from_db()
    assert not crow.is_active and AnnotationLabel.objects.filter(label_class=crow).count() == 1  # old labels kept
    assert list(ClassOperation.objects.order_by("pk").values_list("operation", flat=True)) == [
        "rename",
        "add",
        "deactivate",
    ]
    for fn, kwargs, field in (
        (adjudication.rename_class, {"class_id": crow.pk, "name": "dove"}, "name"),
        (adjudication.rename_class, {"class_id": crow.pk, "name": ""}, "name"),
        (adjudication.rename_class, {"class_id": 999999, "name": "z"}, "class"),
        (adjudication.add_class, {"name": "owl"}, "name"),
        (adjudication.add_class, {"name": "x" * 101}, "name"),
        (adjudication.deactivate_class, {"class_id": crow.pk}, "class"),
    ):
        with pytest.raises(DomainError) as err:
            fn(project, mle, **kwargs)
        assert err.value.field == field
    assert ClassOperation.objects.count() == 3


# ---- Guidelines ---------------------------------------------------------------------------------------

XSS = """# Rules

<script>alert('x')</script>

[click](javascript:alert(1)) and [docs](https://example.com/a)

<img src="x" onerror="alert(2)">

<a href="https://e.com" onclick="alert(3)">e</a>
"""


def test_rendering_is_safe():
    html = guidelines.render_markdown(XSS)
    assert "<h3>Rules</h3>" in html  # headings start at h3 inside the page
    lowered = html.lower()
    for bad in ("<script", "javascript:", "onerror", "onclick"):
        assert bad not in lowered
    assert 'href="https://example.com/a"' in html
    assert 'rel="noopener noreferrer"' in html


def test_publish_versions_and_notes(project, sme, mle, board):
    with pytest.raises(DomainError) as err:
        guidelines.publish(project, sme, "   ")
    assert err.value.field == "text"
    assert (
        not Guideline.objects.filter(project=project).exists()
        or not Guideline.objects.filter(project=project, published_at__isnull=False).exists()
    )
    v1 = guidelines.publish(project, sme, "Crows are black.")
    assert v1.version == 1 and labeling.current_guideline(project).version == 1
    note = guidelines.add_note(project, sme, text="Juveniles look grey", item_id=board["disagree"].pk)
    draft = guidelines.draft(project)
    assert draft.version == 2 and "Crows are black." in draft.text and "Juveniles look grey" in draft.text
    assert note.draft == draft and GuidelineNote.objects.count() == 1
    assert labeling.current_guideline(project).version == 1  # a draft is not shown to labelers
    v2 = guidelines.publish(project, mle)
    assert v2.version == 2 and labeling.current_guideline(project).version == 2
    with pytest.raises(DomainError) as err:
        guidelines.add_note(project, sme, text=" ")
    assert err.value.field == "text"
    with pytest.raises(DomainError) as err:
        guidelines.add_note(project, sme, text="x", item_id=999999)
    assert err.value.field == "item"


# ---- API: permissions and bad input -------------------------------------------------------------------


def endpoints(project, board):
    pid = project.pk
    crow, dove = cls(project, "crow"), cls(project, "dove")
    item = board["disagree"].pk
    return [
        ("get", reverse("api:disagreement-list", args=[pid]), None, 200),
        ("post", reverse("api:resolution-create", args=[pid]), {"item": item, "labels": ["crow"]}, 201),
        ("post", reverse("api:send-back", args=[pid]), {"item": board["unsure"].pk}, 200),
        ("post", reverse("api:guideline-note", args=[pid]), {"text": "n", "item": item}, 201),
        ("get", reverse("api:class-list", args=[pid]), None, 200),
        ("post", reverse("api:class-list", args=[pid]), {"name": "new-{n}"}, 201),
        (
            "post",
            reverse("api:class-merge-preview", args=[pid]),
            {"sources": [crow.pk, dove.pk], "new_target": "c"},
            200,
        ),
        ("post", reverse("api:class-rename", args=[pid, crow.pk]), {"name": "crow-{n}"}, 200),
        ("get", reverse("api:guideline-list", args=[pid]), None, 200),
        ("post", reverse("api:guideline-list", args=[pid]), {"text": "draft"}, 201),
        ("post", reverse("api:guideline-publish", args=[pid]), {"text": "v"}, 201),
        ("post", reverse("api:class-merge", args=[pid]), {"sources": [crow.pk], "target": dove.pk}, 201),
        ("post", reverse("api:class-deactivate", args=[pid, dove.pk]), {}, 200),
    ]


def test_every_endpoint_404s_for_labelers_and_outsiders(project, board, labeler, outsider, api_as):
    for user in (labeler, outsider):
        client = api_as(user)
        for method, url, body, _ in endpoints(project, board):
            response = getattr(client, method)(url, body, format="json")
            assert response.status_code == 404, (user, url)
    assert not Resolution.objects.exists() and not ClassOperation.objects.exists()


@pytest.mark.parametrize("who", ["sme", "mle"])
def test_every_endpoint_works_for_smes_and_mles(project, board, who, request, api_as):
    client = api_as(request.getfixturevalue(who))
    for n, (method, url, body, expected) in enumerate(endpoints(project, board)):
        if body:
            body = {k: v.format(n=n) if isinstance(v, str) else v for k, v in body.items()}
        response = getattr(client, method)(url, body, format="json")
        assert response.status_code == expected, (url, response.content)
    assert ClassOperation.objects.filter(project=project).count() == 4


def test_disagreement_api_payload(project, board, sme, api_as):
    body = api_as(sme).get(reverse("api:disagreement-list", args=[project.pk]), {"reason": "gold_wrong"}).json()
    assert body["counts"]["disagreement"] == 2
    assert [r["external_id"] for r in body["results"]] == ["goldwrong"]
    assert body["results"][0]["class_counts"] == {"crow": 1, "dove": 2}
    bad = api_as(sme).get(reverse("api:disagreement-list", args=[project.pk]), {"slice": "x"})
    assert bad.status_code == 400 and "slice" in bad.json()


def test_api_bad_input_is_400_naming_the_field(project, other_project, board, sme, api_as):
    client = api_as(sme)
    pid = project.pk
    crow = cls(project, "crow")
    pos = cls(other_project, "pos")
    res = reverse("api:resolution-create", args=[pid])
    cases = [
        (res, {"labels": ["crow"]}, "item"),
        (res, {"item": board["disagree"].pk, "labels": ["pos"]}, "labels"),
        (res, {"item": board["disagree"].pk, "labels": "crow"}, "labels"),
        (res, {"item": board["disagree"].pk, "labels": ["crow"], "ambiguous": "yes"}, "ambiguous"),
        (res, {"item": board["disagree"].pk, "labels": ["crow"], "expected_current": "x"}, "expected_current"),
        (res, {"item": "abc", "labels": ["crow"]}, "item"),
        (reverse("api:class-merge", args=[pid]), {"sources": [crow.pk], "target": crow.pk}, "target"),
        (reverse("api:class-merge", args=[pid]), {"sources": [crow.pk], "target": pos.pk}, "target"),
        (reverse("api:class-merge-preview", args=[pid]), {"sources": [pos.pk], "target": crow.pk}, "sources"),
        (reverse("api:guideline-publish", args=[pid]), {"text": ""}, "text"),
        (reverse("api:guideline-list", args=[pid]), {}, "text"),
        (reverse("api:guideline-note", args=[pid]), {"text": ""}, "text"),
        (reverse("api:send-back", args=[pid]), {}, "item"),
        (reverse("api:class-list", args=[pid]), {"name": "crow"}, "name"),
        (reverse("api:class-rename", args=[pid, pos.pk]), {"name": "z"}, "class"),
    ]
    for url, body, field in cases:
        response = client.post(url, body, format="json")
        assert response.status_code == 400, (url, body, response.content)
        assert field in response.json(), (url, body, response.json())
    assert not Resolution.objects.exists() and not ClassOperation.objects.exists()
    assert not Guideline.objects.filter(published_at__isnull=False).exists()


def test_api_double_resolve_is_409(project, board, sme, mle, api_as):
    url = reverse("api:resolution-create", args=[project.pk])
    item = board["disagree"].pk
    first = api_as(sme).post(url, {"item": item, "labels": ["crow"], "expected_current": None}, format="json")
    assert first.status_code == 201
    second = api_as(mle).post(url, {"item": item, "labels": ["dove"], "expected_current": None}, format="json")
    assert second.status_code == 409 and "expected_current" in second.json()
    assert Resolution.objects.filter(item_id=item).count() == 1


def test_guideline_api_lists_versions_with_agreement(project, board, sme, api_as):
    client = api_as(sme)
    client.post(reverse("api:guideline-publish", args=[project.pk]), {"text": "v1"}, format="json")
    g = Guideline.objects.get(project=project, version=1)
    Annotation.objects.filter(item__project=project).update(guideline=g)
    body = client.get(reverse("api:guideline-list", args=[project.pk])).json()
    assert body["versions"][0]["version"] == 1
    assert body["versions"][0]["labels"] > 0 and body["versions"][0]["krippendorff_alpha"] is not None


# ---- Pages ------------------------------------------------------------------------------------------


def pages(project, board):
    s = project.slug
    return [
        reverse("adjudication:queue", args=[s]),
        reverse("adjudication:item", args=[s, board["unsure"].pk]),
        reverse("adjudication:item-panel", args=[s, board["unsure"].pk]),
        reverse("adjudication:guidelines", args=[s]),
        reverse("adjudication:classes", args=[s]),
    ]


def test_pages_403_for_labelers_404_for_outsiders_and_render_for_staff(
    client, project, board, labeler, outsider, sme, mle
):
    for user, code in [(labeler, 403), (outsider, 404)]:
        client.force_login(user)
        for url in pages(project, board):
            assert client.get(url).status_code == code, (user, url)
        assert (
            client.post(
                reverse("adjudication:class-action", args=[project.slug]), {"action": "add", "name": "z"}
            ).status_code
            == code
        )
        assert (
            client.post(
                reverse("adjudication:guidelines", args=[project.slug]), {"text": "x", "action": "publish"}
            ).status_code
            == code
        )
    for user in (sme, mle):
        client.force_login(user)
        for url in pages(project, board):
            assert client.get(url).status_code == 200, (user, url)
    assert not Guideline.objects.exists() and not ClassOperation.objects.exists()


def test_project_page_links_the_review_queue_for_staff_only(client, project, labeler, sme):
    url = reverse("frontend:project-detail", args=[project.slug])
    client.force_login(sme)
    assert 'data-testid="review-queue-link"' in client.get(url).content.decode()
    client.force_login(labeler)
    assert 'data-testid="review-queue-link"' not in client.get(url).content.decode()


def test_item_page_shows_names_and_escapes_labeler_notes(client, project, board, sme):
    client.force_login(sme)
    html = client.get(reverse("adjudication:item", args=[project.slug, board["unsure"].pk])).content.decode()
    assert "lab1" in html and "unsure" in html
    assert "<img src=x onerror" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    queue = client.get(reverse("adjudication:queue", args=[project.slug]) + "?reason=unsure").content.decode()
    assert "Marked unsure" in queue and f'data-item="{board["unsure"].pk}"' in queue
    assert f'data-item="{board["disagree"].pk}"' not in queue


def test_guideline_pages_render_safely_for_smes_and_labelers(client, project, sme, labeler):
    client.force_login(sme)
    url = reverse("adjudication:guidelines", args=[project.slug])
    response = client.post(url, {"text": XSS, "action": "publish"})
    assert response.status_code == 302 and Guideline.objects.get(project=project).version == 1
    for user, page in ((sme, url), (labeler, reverse("labeling:label", args=[project.slug]))):
        client.force_login(user)
        html = client.get(page).content.decode().lower()
        assert "<h3>rules</h3>" in html
        # The editor's textarea shows the Markdown source escaped; no live tag or attribute survives.
        assert "<script>alert" not in html and 'href="javascript' not in html
        assert '<img src="x" onerror' not in html and 'onclick="alert' not in html
    assert 'data-testid="guideline-banner"' in html  # the labeler has not read v1


def test_classes_page_previews_and_merges(client, project, labeler, labeler2, labeler3, mle):
    swapped_project(project, [labeler, labeler2, labeler3], random.Random(3))
    crow, dove = cls(project, "crow"), cls(project, "dove")
    client.force_login(mle)
    url = reverse("adjudication:classes", args=[project.slug])
    html = client.get(url, {"sources": [crow.pk, dove.pk], "new_target": "corvid"}).content.decode()
    assert 'data-testid="merge-preview"' in html and "corvid" in html
    assert not LabelClass.objects.filter(name="corvid").exists()
    response = client.post(
        reverse("adjudication:class-action", args=[project.slug]),
        {"action": "merge", "sources": [crow.pk, dove.pk], "target": "", "new_target": "corvid"},
    )
    assert response.status_code == 302
    assert cls(project, "crow").merged_into == cls(project, "corvid")


def test_disagreement_list_queries_do_not_grow_with_the_queue(project, board, sme, labeler, labeler2, api_as):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = api_as(sme)
    url = reverse("api:disagreement-list", args=[project.pk])

    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    small = queries()
    for i in range(15):  # 15 more disputed items, each with its own labels and slice
        item = add_item(project, f"more{i}", sample=False, metadata={"noise": f"n{i}"})
        label(item, labeler, "crow", unsure=True)
        label(item, labeler2, "dove")
    labeling.refresh_queue_state(project)
    large = client.get(url).json()
    assert len(large["results"]) >= 20
    assert queries() == small


# ---- Issue 19: the item page's full picture, undo, confirmation, a queue that scales -------------------


@pytest.mark.parametrize(
    "spelling", ["crow,dove", "crow-dove", "crow dove", "crow/dove", "crow vs dove", "Crow VS. dove", " crow ,  dove "]
)
def test_pair_filter_takes_any_common_spelling(project, board, spelling):
    rows = adjudication.disagreement_queue(project, pair=spelling).rows
    assert {r.external_id for r in rows} == {"disagree", "goldwrong"}


def test_pair_filter_names_what_it_refuses_and_splits_names_with_hyphens(project, board, mle, labeler, labeler2):
    for typed, words in (
        ("crow-eagle", "'eagle' is not a class"),
        ("eagle vs crow", "'eagle' is not a class"),
        ("crow-crow", "two different classes"),
        ("crow", "give two class names"),
    ):
        with pytest.raises(DomainError) as err:
            adjudication.disagreement_queue(project, pair=typed)
        assert err.value.field == "pair" and words in err.value.message, typed
    adjudication.add_class(project, mle, name="blue-jay")
    item = add_item(project, "jay", sample=False)
    label(item, labeler, "blue-jay", unsure=True)
    label(item, labeler2, "crow")
    for typed in ("blue-jay-crow", "crow - blue-jay", "blue-jay vs crow"):
        assert [r.external_id for r in adjudication.disagreement_queue(project, pair=typed).rows] == ["jay"], typed


def disputed_items(project, users, n, prefix="q"):
    """n items in the queue: each marked unsure, with labels spread so entropies differ."""
    names = ["crow", "dove", "owl"]
    for i in range(n):
        item = add_item(project, f"{prefix}{i:03d}", sample=False)
        for j, u in enumerate(users[: 1 + i % len(users)]):
            label(item, u, names[(i + j) % 3] if j else names[i % 3], unsure=j == 0)


def test_queue_keyset_pages_cover_the_queue_once_and_stay_put(project, sme, labeler, labeler2, labeler3):
    disputed_items(project, [labeler, labeler2, labeler3], 12)
    whole = adjudication.disagreement_queue(project)
    assert whole.total == 12 and len(whole.rows) == 12 and whole.next_cursor is None
    seen, after, pages = [], None, []
    while True:
        page = adjudication.disagreement_queue(project, after=after, limit=5)
        pages.append(page)
        seen += [r.item_id for r in page.rows]
        if page.next_cursor is None:
            break
        after = page.next_cursor
    assert [len(p.rows) for p in pages] == [5, 5, 2]
    assert seen == [r.item_id for r in whole.rows] == whole.ids
    assert [p.start for p in pages] == [0, 5, 10] and pages[0].prev_cursor is None
    back = adjudication.disagreement_queue(project, before=pages[1].prev_cursor, limit=5)
    assert [r.item_id for r in back.rows] == [r.item_id for r in pages[0].rows]
    # Resolving items of page 1 does not move page 2: it still starts where page 1 ended.
    for row in pages[0].rows[:3]:
        adjudication.resolve(project, row.item_id, sme, labels=["crow"])
    again = adjudication.disagreement_queue(project, after=pages[0].next_cursor, limit=5)
    assert [r.item_id for r in again.rows] == [r.item_id for r in pages[1].rows]
    assert again.total == 9 and again.start == 2
    for bad, field in (({"after": "x"}, "after"), ({"before": "1:2"}, "before"), ({"limit": 0}, "limit")):
        with pytest.raises(DomainError) as err:
            adjudication.disagreement_queue(project, **bad)
        assert err.value.field == field


def test_queue_page_runs_the_same_queries_for_5_or_70_items(
    client, project, sme, labeler, labeler2, labeler3, django_assert_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(sme)
    url = reverse("adjudication:queue", args=[project.slug])
    users = [labeler, labeler2, labeler3]
    disputed_items(project, users, 5)
    with CaptureQueriesContext(connection) as small:
        html = client.get(url).content.decode()
    assert html.count('<tr data-item="') == 5 and 'data-testid="next-page"' not in html
    disputed_items(project, users, 65, prefix="r")
    with django_assert_num_queries(len(small)):
        html = client.get(url).content.decode()
    assert html.count('<tr data-item="') == 50 and 'data-testid="next-page"' in html
    assert "Items 1\N{EN DASH}50 of 70" in html


def test_queue_page_shows_a_bad_filter_and_keeps_what_was_typed(client, project, board, sme):
    client.force_login(sme)
    url = reverse("adjudication:queue", args=[project.slug])
    html = client.get(url, {"pair": "crow-eagle", "reason": "disagreement"}).content.decode()
    assert "pair not applied: &#x27;eagle&#x27; is not a class of this project" in html
    assert 'value="crow-eagle"' in html and 'aria-invalid="true"' in html
    assert html.count('<tr data-item="') == 2  # the reason filter still applies
    html = client.get(url, {"pair": "crow-dove"}).content.decode()
    assert 'data-testid="filter-error"' not in html and html.count('<tr data-item="') == 2


def test_queue_page_shows_thumbnails_or_snippets(client, project, other_project, board, sme, outsider):
    from django.core.files.base import ContentFile

    item = board["disagree"]
    item.thumbnail.save("t.png", ContentFile(b"\x89PNG fake"), save=True)
    Item.objects.filter(pk=board["unsure"].pk).update(text="A long review text " * 20)
    client.force_login(sme)
    html = client.get(reverse("adjudication:queue", args=[project.slug])).content.decode()
    assert f'src="/items/{item.pk}/thumbnail/"' in html
    assert "A long review text A long" in html and "…" in html
    assert client.get(f"/items/{item.pk}/thumbnail/").status_code == 200
    client.force_login(outsider)
    assert client.get(f"/items/{item.pk}/thumbnail/").status_code == 404


def test_item_page_consensus_is_the_queues_and_shows_gold_reasons_and_position(client, project, board, sme):
    queue = adjudication.disagreement_queue(project)
    client.force_login(sme)
    for row in queue.rows:
        context = adjudication.review_context(project, row.item_id)
        assert (context["row"].consensus, context["row"].confidence) == (row.consensus, row.confidence)
        assert context["consensus_method"] == queue.method == "Dawid\N{EN DASH}Skene"
    gold = board["goldwrong"]
    row = next(r for r in queue.rows if r.item_id == gold.pk)
    html = client.get(reverse("adjudication:item", args=[project.slug, gold.pk]), {"reason": "disagreement"})
    html = html.content.decode()
    assert '<dd data-testid="gold"><strong>crow</strong></dd>' in html
    assert 'data-reason="disagreement"' in html and 'data-reason="gold_wrong"' in html
    assert f'<strong data-testid="consensus">{row.consensus}</strong>' in html
    assert f"({row.confidence:.2f})" in html and "by Dawid\N{EN DASH}Skene, as in the queue" in html
    filtered = adjudication.disagreement_queue(project, reason="disagreement")
    position = filtered.ids.index(gold.pk) + 1
    assert f"Item {position} of 2 in the queue" in html and "filtered by reason: disagreement" in html
    assert "?reason=disagreement" in html  # back to the same filtered queue
    html = client.get(reverse("adjudication:item-panel", args=[project.slug, gold.pk])).content.decode()
    assert f"Item {queue.ids.index(gold.pk) + 1} of {queue.total} in the queue" in html


def test_item_page_shows_labeler_accuracy_from_the_quality_report(client, project, board, sme, labeler3):
    from annotation.services.quality import compute_quality_report

    report = compute_quality_report(project)
    accuracy = {r["name"]: r["accuracy"] for r in report.data["labelers"]}
    assert accuracy["lab3"] == 1.0 and accuracy["lab1"] == 0.0  # on the gold item, lab3 said crow
    client.force_login(sme)
    html = client.get(reverse("adjudication:item", args=[project.slug, board["goldwrong"].pk])).content.decode()
    cells = html.split('data-testid="labeler-accuracy">')[1:]
    assert [c.split(" ")[0] for c in cells] == ["0.00", "0.00", "1.00"]  # lab1, lab2, lab3 in label order


def test_item_page_shows_the_promoted_models_stored_prediction(client, project, board, sme, settings, tmp_path):
    import numpy as np

    from training.models import DatasetSnapshot, ModelVersion
    from training.services import out_of_sample_path

    snapshot = DatasetSnapshot.objects.create(
        project=project,
        policy={},
        content_hash="0" * 64,
        classes=[{"id": 0, "name": "crow"}, {"id": 1, "name": "dove"}, {"id": 2, "name": "owl"}],
        counts={},
        sources={},
        size=0,
    )
    version = ModelVersion.objects.create(
        project=project, snapshot=snapshot, trainer="sklearn_logreg", status="ready", artifact="x.joblib"
    )
    path = out_of_sample_path(version)
    path.parent.mkdir(parents=True, exist_ok=True)
    scored = board["disagree"].pk
    np.savez(path, item_ids=np.array([scored]), proba=np.array([[0.1, 0.7, 0.2]]))
    client.force_login(sme)
    url = reverse("adjudication:item", args=[project.slug, scored])
    assert "no promoted model" in client.get(url).content.decode()
    ModelVersion.objects.filter(pk=version.pk).update(is_promoted=True)
    html = client.get(url).content.decode()
    assert f'<strong>dove</strong> (0.70) <span class="muted small">promoted model {version.short_id}' in html
    other = client.get(reverse("adjudication:item", args=[project.slug, board["unsure"].pk])).content.decode()
    assert f"promoted model {version.short_id} has not scored this item" in other


def test_undo_a_resolution_restores_the_item_and_is_in_its_history(project, board, sme, mle):
    item = board["review"]
    first = adjudication.resolve(project, item.pk, sme, labels=["owl"])
    second = adjudication.resolve(project, item.pk, sme, labels=["crow"], expected_current=first.pk)
    with pytest.raises(Conflict):  # only the latest decision can be undone
        adjudication.undo_decision(project, first.event.pk, sme)
    with pytest.raises(DomainError) as err:
        adjudication.undo_decision(project, second.event.pk, mle)
    assert err.value.field == "event" and "only the SME who made" in err.value.message
    event = adjudication.undo_decision(project, second.event.pk, sme)
    assert event.undone_at is not None and event.undone_by == sme
    assert Resolution.objects.get(is_current=True, item=item).pk == first.pk
    adjudication.undo_decision(project, first.event.pk, sme)
    assert not Resolution.objects.filter(item=item, is_current=True).exists()
    assert ReviewRequest.objects.get(item=item).resolved_at is None  # reopened: back in the queue
    assert "review" in {r.external_id for r in adjudication.disagreement_queue(project).rows}
    with pytest.raises(DomainError) as err:
        adjudication.undo_decision(project, first.event.pk, sme)
    assert "already undone" in err.value.message
    history = adjudication.item_history(item)
    assert [(h["kind"], h["labels"], h["undone_at"] is not None) for h in history] == [
        ("resolve", ["owl"], True),
        ("resolve", ["crow"], True),
    ]


def test_undo_is_refused_after_the_window(project, board, sme):
    from datetime import timedelta

    from django.utils import timezone

    resolution = adjudication.resolve(project, board["disagree"].pk, sme, ambiguous=True)
    later = timezone.now() + timedelta(seconds=adjudication.undo_window() + 1)
    with pytest.raises(DomainError) as err:
        adjudication.undo_decision(project, resolution.event.pk, sme, now=later)
    assert "can be undone for 30 seconds" in err.value.message
    assert Resolution.objects.get(item=board["disagree"]).is_current


def test_undo_a_send_back_restores_labels_assignments_and_queue(project, board, sme, labeler):
    from annotation.models import QueueEntry

    item = board["disagree"]
    before_current = set(Annotation.objects.filter(item=item, is_current=True).values_list("pk", flat=True))
    before_assignments = set(Assignment.objects.filter(item=item).values_list("labeler_id", "status"))
    resolution = adjudication.resolve(project, item.pk, sme, labels=["crow"])
    event = adjudication.send_back_decision(project, item.pk, sme)
    assert not Annotation.objects.filter(item=item, is_current=True).exists()
    adjudication.undo_decision(project, event.pk, sme)
    assert set(Annotation.objects.filter(item=item, is_current=True).values_list("pk", flat=True)) == before_current
    assert set(Assignment.objects.filter(item=item).values_list("labeler_id", "status")) == before_assignments
    assert not QueueEntry.objects.filter(item=item, is_active=True).exists()
    assert Resolution.objects.get(item=item, is_current=True).pk == resolution.pk
    item.refresh_from_db()
    assert item.queue_done
    # A send-back whose item was labelled anew cannot be undone.
    adjudication.undo_decision(project, resolution.event.pk, sme)
    event = adjudication.send_back_decision(project, item.pk, sme)
    served = labeling.next_item(project, labeler)
    assert served.item.pk == item.pk
    labeling.submit(project, labeler, item_id=item.pk, labels=["owl"], client_id="00000000-0000-0000-0000-0000000000aa")
    with pytest.raises(Conflict):
        adjudication.undo_decision(project, event.pk, sme)
    kinds = [h["kind"] for h in adjudication.item_history(item)]
    assert kinds == ["resolve", "send_back", "send_back"]


def test_undo_api_and_decision_answers(project, board, sme, labeler, outsider, api_as):
    client = api_as(sme)
    created = client.post(
        reverse("api:resolution-create", args=[project.pk]),
        {"item": board["disagree"].pk, "labels": ["dove"]},
        format="json",
    ).json()
    assert created["event"] and created["undo_seconds"] == 30
    url = reverse("api:decision-undo", args=[project.pk, created["event"]])
    for user in (labeler, outsider):
        assert api_as(user).post(url, format="json").status_code == 404
    answer = client.post(url, format="json")
    assert answer.status_code == 200 and answer.json()["kind"] == "resolve"
    assert not Resolution.objects.filter(is_current=True).exists()
    again = client.post(url, format="json")
    assert again.status_code == 400 and "already undone" in again.json()["event"][0]
    missing = client.post(reverse("api:decision-undo", args=[project.pk, 999999]), format="json")
    assert missing.status_code == 404
    sent = client.post(reverse("api:send-back", args=[project.pk]), {"item": board["unsure"].pk}, format="json").json()
    assert sent["retired_annotations"] == 1 and sent["event"]
    assert client.post(reverse("api:decision-undo", args=[project.pk, sent["event"]])).status_code == 200
    assert Annotation.objects.filter(item=board["unsure"], is_current=True).count() == 1


def test_disagreement_api_pages_and_names_bad_filters(project, sme, labeler, labeler2, labeler3, api_as):
    disputed_items(project, [labeler, labeler2, labeler3], 7)
    client = api_as(sme)
    url = reverse("api:disagreement-list", args=[project.pk])
    first = client.get(url, {"limit": 4}).json()
    assert first["count"] == 7 and len(first["results"]) == 4 and first["previous"] is None
    assert first["consensus_method"] == "Dawid\N{EN DASH}Skene"
    second = client.get(url, {"limit": 4, "after": first["next"]}).json()
    assert len(second["results"]) == 3 and second["next"] is None and second["start"] == 4
    ids = [r["item"] for r in first["results"] + second["results"]]
    assert len(set(ids)) == 7
    for params, field, words in (
        ({"pair": "crow-eagle"}, "pair", "'eagle' is not a class"),
        ({"after": "nope"}, "after", "not a page"),
        ({"limit": 0}, "limit", ""),
        ({"reason": "x"}, "reason", ""),
    ):
        response = client.get(url, params)
        assert response.status_code == 400 and words in response.json()[field][0], params


def test_guideline_images_only_from_this_site():
    html = guidelines.render_markdown(
        "![pixel](https://tracker.example/p.gif) ![rel](//tracker.example/p.gif) ![ok](/items/1/image/)\n\n"
        '<img src="https://tracker.example/q.gif"> <img src="/\\tracker.example/r.gif">'
    )
    assert "tracker.example" not in html
    assert '<img alt="ok" src="/items/1/image/">' in html


def test_publish_preview_shows_the_diff_and_writes_nothing(client, project, sme, labeler):
    guidelines.publish(project, sme, "Crows are black.\nDoves are white.")
    preview = guidelines.publish_preview(project, "Crows are black.\nDoves are grey.")
    assert preview["version"] == 2 and preview["published"].version == 1
    assert ("del", "-Doves are white.") in preview["diff"] and ("add", "+Doves are grey.") in preview["diff"]
    url = reverse("adjudication:guideline-preview", args=[project.slug])
    client.force_login(sme)
    html = client.post(url, {"text": "Crows are black.\n<script>x</script>"}).content.decode()
    assert "published v1" in html and '<span class="adj-diff__del">-Doves are white.</span>' in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert client.post(url, {"text": "x" * 200_001}).status_code == 400
    client.force_login(labeler)
    assert client.post(url, {"text": "x"}).status_code == 403
    assert Guideline.objects.filter(project=project).count() == 1


def test_class_and_guideline_pages_ask_for_confirmation_stating_the_consequence(
    client, project, labeler, labeler2, labeler3, mle
):
    swapped_project(project, [labeler, labeler2, labeler3], random.Random(3))
    crow, dove = cls(project, "crow"), cls(project, "dove")
    client.force_login(mle)
    url = reverse("adjudication:classes", args=[project.slug])
    html = client.get(url, {"sources": [crow.pk, dove.pk], "new_target": "corvid"}).content.decode()
    preview = adjudication.merge_preview(project, sources=[crow.pk, dove.pk], new_target="corvid")
    moved = preview["moves"]["annotation_labels"]
    assert f"{moved} labels move from crow and dove to corvid (a new class)" in html
    assert f"{preview['alpha_before']:.3f} → {preview['alpha_after']:.3f}" in html
    assert 'data-confirm="Merge? ' in html and "adjudication_confirm.js" in html and "<dialog" in html
    n_crow = AnnotationLabel.objects.filter(label_class=crow).count()
    assert f"Deactivate “crow”? Labelers and SMEs can no longer choose it (key {crow.shortcut}); its {n_crow}" in html
    assert f"Rename “crow” to “{{name}}”? Its {n_crow} labels" in html
    html = client.get(reverse("adjudication:guidelines", args=[project.slug])).content.decode()
    assert 'data-confirm="Publish this text as v1?' in html
    assert f'data-confirm-preview="{reverse("adjudication:guideline-preview", args=[project.slug])}"' in html


def test_history_includes_decisions_made_before_they_were_recorded(project, board, sme):
    from annotation.models import AdjudicationEvent

    item = board["disagree"]
    adjudication.resolve(project, item.pk, sme, labels=["crow"])
    adjudication.send_back(project, item.pk, sme)
    AdjudicationEvent.objects.all().delete()  # as rows written before the events existed
    history = adjudication.item_history(item)
    assert [(h["kind"], h["labels"], h["by"]) for h in history] == [
        ("resolve", ["crow"], "sme"),
        ("send_back", [], "sme"),
    ]


def test_the_queue_page_offers_the_undo_after_the_last_item(client, project, board, sme, mle, labeler):
    from datetime import timedelta

    from django.utils import timezone

    item = board["disagree"]
    resolution = adjudication.resolve(project, item.pk, sme, labels=["dove"])
    event = resolution.event
    queue_url = reverse("adjudication:queue", args=[project.slug])
    assert adjudication.undoable(project, mle, event.pk) is None  # not theirs
    late = timezone.now() + timedelta(seconds=adjudication.undo_window() + 1)
    assert adjudication.undoable(project, sme, event.pk, now=late) is None
    assert adjudication.undoable(project, sme, "x") is None
    client.force_login(mle)
    assert 'data-testid="undo"' not in client.get(queue_url, {"undo": event.pk}).content.decode()
    client.force_login(labeler)
    undo_url = reverse("adjudication:undo", args=[project.slug, event.pk])
    assert client.post(undo_url).status_code == 403  # a member without the role: the 403 page
    client.force_login(sme)
    html = client.get(queue_url, {"undo": event.pk, "reason": "unsure"}).content.decode()
    assert "Your last decision: resolved (dove) on disagree." in html
    assert f'action="{undo_url}?reason=unsure"' in html
    response = client.post(f"{undo_url}?reason=unsure")
    assert response.status_code == 302
    assert response["Location"] == reverse("adjudication:item", args=[project.slug, item.pk]) + "?reason=unsure"
    assert not Resolution.objects.filter(item=item, is_current=True).exists()
    again = client.post(undo_url)
    assert again.status_code == 302 and again["Location"] == queue_url
    assert "already undone" in client.get(queue_url).content.decode()


def test_digit_pairs_in_the_spellings_people_type(labeler, labeler2):
    from annotation.services.projects import create_project

    digits = create_project(slug="digits-pairs", name="Digits", data_kind="image", classes=[str(d) for d in range(10)])
    item = add_item(digits, "d1", sample=False)
    label(item, labeler, "3", unsure=True)
    label(item, labeler2, "8")
    other = add_item(digits, "d2", sample=False)
    label(other, labeler, "3", unsure=True)
    label(other, labeler2, "5")
    for typed in ("3-8", "3,8", "3 8", "3/8", "3 vs 8", "8 vs. 3", "3 \N{EN DASH} 8"):
        assert [r.external_id for r in adjudication.disagreement_queue(digits, pair=typed).rows] == ["d1"], typed
    with pytest.raises(DomainError) as err:
        adjudication.disagreement_queue(digits, pair="3-12")
    assert err.value.message.startswith("'12' is not a class of this project (its classes: 0, 1, 2")
