"""The labeling workflow against the real database: queue, leases, labels, blindness, pages.

Runs on SQLite by default and on PostgreSQL when DATABASE_URL points at it (CI); the threaded
concurrency test needs PostgreSQL (SQLite runs one writer at a time, which is its guarantee).
"""

import random
import re
import threading
import uuid
from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from annotation import queue
from annotation.models import (
    Annotation,
    AnnotationLabel,
    Assignment,
    GoldLabel,
    GoldLabelClass,
    Guideline,
    Item,
    LabelClass,
    Membership,
    QueueEntry,
)
from annotation.services import labeling
from tests.conftest import api_client_for, make_user

pytestmark = pytest.mark.django_db

FROZEN = timezone.now().replace(microsecond=0)


# ---- Helpers -------------------------------------------------------------------------------------


def add_items(project, n, *, sample=(), gold=(), metadata=None, prefix="it"):
    """`n` items; indexes in `sample` join the consistency sample, those in `gold` get gold 'crow'."""
    start = Item.objects.filter(project=project).count()
    items = Item.objects.bulk_create(
        Item(
            project=project,
            external_id=f"{prefix}-{start + i}",
            split="train",
            in_consistency_sample=i in sample,
            metadata=dict(metadata or {}),
        )
        for i in range(n)
    )
    for i in gold:
        make_gold(items[i])
    return items


def make_gold(item, name="crow"):
    gold = GoldLabel.objects.create(item=item)
    GoldLabelClass.objects.create(gold=gold, label_class=LabelClass.objects.get(project=item.project, name=name))


def url(project, path):
    return f"/api/v1/projects/{project.pk}/{path}"


def next_item(client, project, exclude=()):
    query = f"?exclude={','.join(map(str, exclude))}" if exclude else ""
    return client.get(url(project, f"next-item/{query}"))


def post_label(client, project, item_id, labels=("crow",), **fields):
    body = {"item": item_id, "labels": list(labels), "client_id": str(uuid.uuid4()), **fields}
    return client.post(url(project, "annotations/"), body, format="json")


def label_with(user, project, label_class):
    """Give `user` a current annotation of the item (as an import would): no lease needed."""

    def apply(item):
        annotation = Annotation.objects.create(item=item, labeler=user)
        AnnotationLabel.objects.create(annotation=annotation, label_class=label_class)
        return annotation

    return apply


def written():
    """Everything a request could write, to prove a refused one wrote nothing."""
    return (
        list(Annotation.objects.order_by("pk").values_list("pk", "is_current", "item_id", "labeler_id")),
        list(AnnotationLabel.objects.order_by("pk").values_list("pk", "label_class_id")),
        list(Assignment.objects.order_by("pk").values_list("pk", "status", "expires_at")),
        list(Item.objects.order_by("pk").values_list("pk", "queue_done")),
    )


@pytest.fixture
def gold_rate(settings):
    def set_rate(rate):
        settings.CONCORD_LABELING = {**settings.CONCORD_LABELING, "GOLD_RATE": rate}

    return set_rate


class Draws:
    """A stand-in for the service's random source: hands out the given draws in turn."""

    def __init__(self, *draws):
        self.draws = list(draws)

    def random(self):
        return self.draws.pop(0) if len(self.draws) > 1 else self.draws[0]


# ---- The queue -----------------------------------------------------------------------------------


def test_next_item_leases_an_item_and_shows_only_what_a_labeler_may_see(project, labeler, api_as):
    Guideline.objects.create(project=project, version=1, text="v1", published_at=FROZEN)
    Guideline.objects.create(project=project, version=2, text="draft")  # unpublished: not in force
    (item,) = add_items(project, 1, metadata={"noise": "car", "gold": "crow", "_source": "import-7"})
    response = next_item(api_as(labeler), project)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"id", "kind", "image", "width", "height", "text", "metadata", "guideline_version",
                         "lease_expires_at"}  # fmt: skip
    assert body["id"] == item.pk and body["kind"] == "image" and body["guideline_version"] == 1
    assert body["metadata"] == {"noise": "car"}  # gold-like and private keys stay hidden
    lease = Assignment.objects.get()
    assert (lease.item_id, lease.labeler_id, lease.status) == (item.pk, labeler.pk, "leased")
    assert lease.expires_at - lease.served_at == timedelta(seconds=600)


def test_a_held_lease_comes_back_and_exclude_prefetches_another(project, labeler, api_as):
    add_items(project, 3)
    client = api_as(labeler)
    first = next_item(client, project).json()["id"]
    assert next_item(client, project).json()["id"] == first  # a reload does not take a second item
    second = next_item(client, project, exclude=[first]).json()["id"]
    assert second != first
    assert next_item(client, project, exclude=[first]).json()["id"] == second  # resumed, not a third
    assert Assignment.objects.filter(labeler=labeler, status="leased").count() == 2


def test_next_item_answers_204_when_nothing_is_left(project, labeler, labeler2, api_as):
    (item,) = add_items(project, 1)
    assert next_item(api_as(labeler), project).status_code == 200
    assert next_item(api_as(labeler2), project).status_code == 204  # its only slot is leased
    assert post_label(api_as(labeler), project, item.pk).status_code == 201
    assert next_item(api_as(labeler), project).status_code == 204
    assert next_item(api_as(labeler2), project).status_code == 204


def test_each_item_gets_exactly_the_labels_it_needs(project, labeler, labeler2, sme, mle, api_as, gold_rate):
    """k = overlap (3) for the consistency sample and gold items, 1 for the rest; SMEs and MLEs label too."""
    gold_rate(0.5)
    items = add_items(project, 8, sample={0, 1, 2}, gold={2, 3})
    extra = make_user("lab3")
    Membership.objects.create(user=extra, project=project, role="labeler")
    done = {}
    for user in [labeler, labeler2, sme, mle, extra]:
        client = api_as(user)
        while (response := next_item(client, project)).status_code == 200:
            item_id = response.json()["id"]
            assert post_label(client, project, item_id).status_code == 201
            done.setdefault(user.pk, []).append(item_id)
        assert response.status_code == 204
    counts = {i.pk: Annotation.objects.current().filter(item=i).count() for i in items}
    assert [counts[i.pk] for i in items] == [3, 3, 3, 3, 1, 1, 1, 1]
    assert all(len(ids) == len(set(ids)) for ids in done.values())
    assert Item.objects.filter(project=project, queue_done=False).count() == 0


def test_queue_entries_go_first_by_priority_then_the_seeded_order(project, labeler, api_as):
    items = add_items(project, 6)
    QueueEntry.objects.create(project=project, item=items[4], priority=0.2, strategy="entropy")
    QueueEntry.objects.create(project=project, item=items[1], priority=0.9, strategy="error_model")
    QueueEntry.objects.create(project=project, item=items[3], priority=5, strategy="manual", is_active=False)
    client = api_as(labeler)
    served = []
    while (response := next_item(client, project)).status_code == 200:
        served.append(response.json()["id"])
        post_label(client, project, served[-1])
    rest = sorted((i.pk for i in items if i.pk not in (items[1].pk, items[4].pk)),
                  key=lambda pk: (queue.seeded_rank(project.seed, pk), pk))  # fmt: skip
    assert served == [items[1].pk, items[4].pk, *rest]


def test_a_queue_entry_leaves_the_queue_once_its_item_has_all_its_labels(project, labeler, labeler2, api_as):
    (plain, sample) = add_items(project, 2, sample={1})
    for item in (plain, sample):
        QueueEntry.objects.create(project=project, item=item, priority=1, strategy="entropy")
    for user in (labeler, labeler2):
        client = api_as(user)
        while (response := next_item(client, project)).status_code == 200:
            post_label(client, project, response.json()["id"])
    active = dict(QueueEntry.objects.values_list("item_id", "is_active"))
    assert active == {plain.pk: False, sample.pk: True}  # the sample item still needs a third label


def test_the_rank_the_database_computes_is_the_pure_seeded_rank(project, labeler, api_as):
    project.seed = 12345
    project.save()
    items = add_items(project, 40)
    next_item(api_as(labeler), project)
    ranks = dict(Item.objects.values_list("pk", "queue_rank"))
    assert ranks == {i.pk: queue.seeded_rank(12345, i.pk) for i in items}


@pytest.mark.parametrize("seed", range(4))
def test_the_service_serves_what_the_reference_rule_says(project, labeler, labeler2, sme, mle, seed):
    """Random projects in random states: the SQL picks the item `queue.reference_next` picks."""
    rng = random.Random(seed)
    now = FROZEN
    others = [labeler2, sme, mle]
    crow = project.label_classes.get(name="crow")
    items = add_items(
        project,
        30,
        sample={i for i in range(30) if rng.random() < 0.3},
        gold={i for i in range(30) if rng.random() < 0.2},
    )
    for item in items:
        if rng.random() < 0.25:
            QueueEntry.objects.create(project=project, item=item, priority=rng.choice([0.1, 0.5, 2.0]), strategy="t")
        for user in [labeler, *others]:
            roll = rng.random()
            if roll < 0.15 and user != labeler:
                label_with(user, project, crow)(item)
            elif roll < 0.3:
                status, minutes = rng.choice([("leased", 5), ("leased", -5), ("skipped", -5), ("done", -5)])
                if (status == "done" and user != labeler) or (minutes > 0 and user == labeler):
                    continue  # done means labelled; a live lease of the labeler's own is resumed, not chosen
                Assignment.objects.create(
                    item=item, labeler=user, status=status, served_at=now, expires_at=now + timedelta(minutes=minutes)
                )
    labeling.refresh_queue_state(project)

    entries = dict(QueueEntry.objects.filter(is_active=True).values_list("item_id", "priority"))
    gold = set(GoldLabel.objects.values_list("item_id", flat=True))
    model = []
    for item in Item.objects.filter(project=project):
        model.append(
            queue.QueueItem(
                id=item.pk,
                rank=item.queue_rank,
                in_consistency_sample=item.in_consistency_sample,
                has_gold=item.pk in gold,
                priority=entries.get(item.pk),
                labelled_by=frozenset(
                    Annotation.objects.current().filter(item=item).values_list("labeler_id", flat=True)
                ),
                assignments={a.labeler_id: (a.status, a.expires_at) for a in Assignment.objects.filter(item=item)},
            )
        )
    for draw in (0.05, 0.5):
        expected = queue.reference_next(model, labeler.pk, now=now, overlap=3, gold_rate=0.1, draw=draw)
        sid = transaction.savepoint_create()
        served = labeling.next_item(project, labeler, now=now, rng=Draws(draw))
        transaction.savepoint_rollback(sid)
        assert (served.item.pk if served else None) == expected


def test_gold_is_served_at_the_configured_rate(project, labeler, gold_rate):
    gold_rate(0.25)
    add_items(project, 400, gold=set(range(200)))
    rng = random.Random(4)
    gold = set(GoldLabel.objects.values_list("item_id", flat=True))
    picks = []
    for _ in range(100):
        served = labeling.next_item(project, labeler, rng=rng)
        picks.append(served.item.pk in gold)
        labeling.skip(project, labeler, item_id=served.item.pk)
    assert 0.15 <= sum(picks) / len(picks) <= 0.35


def test_gold_rate_one_serves_gold_first_and_rate_zero_last(project, labeler, labeler2, api_as, gold_rate):
    items = add_items(project, 4, gold={1, 3})
    gold = {items[1].pk, items[3].pk}
    gold_rate(1.0)
    client = api_as(labeler)
    first = [next_item(client, project, exclude=[]).json()["id"]]
    first.append(next_item(client, project, exclude=first).json()["id"])
    assert set(first) == gold
    gold_rate(0.0)
    client = api_as(labeler2)
    second = [next_item(client, project).json()["id"]]
    second.append(next_item(client, project, exclude=second).json()["id"])
    assert not set(second) & gold


def test_refresh_reopens_an_item_that_got_gold_after_it_was_full(project, labeler, labeler2, api_as):
    (item,) = add_items(project, 1)
    client = api_as(labeler)
    next_item(client, project)
    post_label(client, project, item.pk)
    item.refresh_from_db()
    assert item.queue_done
    make_gold(item)  # e.g. an import of truth: now it needs 3 labels
    assert next_item(api_as(labeler2), project).status_code == 204  # the flag is stale...
    assert labeling.refresh_queue_state(project) == {"closed": 0, "opened": 1}
    assert next_item(api_as(labeler2), project).json()["id"] == item.pk  # ...until refreshed


def test_refresh_queue_command(project, capsys):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    (item,) = add_items(project, 1)
    label_with(make_user("importer"), project, project.label_classes.get(name="owl"))(item)  # as an import would
    call_command("refresh_queue", "birds")
    assert "birds: 1 item(s) now have all their labels, 0 need more." in capsys.readouterr().out
    item.refresh_from_db()
    assert item.queue_done
    with pytest.raises(CommandError, match="no project with slug 'nope'"):
        call_command("refresh_queue", "nope")


# ---- Leases --------------------------------------------------------------------------------------


def test_an_expired_lease_frees_the_slot_and_the_late_submit_is_refused(project, labeler, labeler2, api_as):
    (item,) = add_items(project, 1)
    first, second = api_as(labeler), api_as(labeler2)
    assert next_item(first, project).json()["id"] == item.pk
    assert next_item(second, project).status_code == 204
    Assignment.objects.filter(labeler=labeler).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert next_item(second, project).json()["id"] == item.pk
    before = written()
    response = post_label(first, project, item.pk)
    assert response.status_code == 409
    assert "ran out" in response.json()["item"][0]
    assert written() == before
    assert post_label(second, project, item.pk).status_code == 201


def test_a_late_submit_is_taken_while_its_slot_is_still_free(project, labeler, api_as):
    (item,) = add_items(project, 1)
    client = api_as(labeler)
    next_item(client, project)
    Assignment.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    assert post_label(client, project, item.pk).status_code == 201
    assert Assignment.objects.get().status == "done"


def test_a_labelers_own_expired_lease_is_renewed_not_duplicated(project, labeler, api_as):
    (item,) = add_items(project, 1)
    client = api_as(labeler)
    next_item(client, project)
    Assignment.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    response = next_item(client, project)
    assert response.json()["id"] == item.pk
    lease = Assignment.objects.get()
    assert lease.status == "leased" and lease.expires_at > timezone.now()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="threads need PostgreSQL; SQLite serialises writers")
@pytest.mark.django_db(transaction=True)
def test_twenty_labelers_at_once_never_share_a_slot_or_lose_a_label(project, gold_rate):
    """20 threads, each a different labeler, pull and submit until the queue is empty for all."""
    gold_rate(0.2)
    items = add_items(project, 90, sample=set(range(0, 90, 4)), gold=set(range(1, 90, 9)))
    users = [make_user(f"crowd{n}") for n in range(20)]
    Membership.objects.bulk_create(Membership(user=u, project=project, role="labeler") for u in users)
    start = threading.Barrier(len(users))
    results = {u.pk: {"submitted": [], "failures": []} for u in users}

    def work(user):
        mine = results[user.pk]
        try:
            client = api_client_for(user)
            start.wait()
            for _ in range(200):
                response = next_item(client, project)
                if response.status_code == 204:
                    break
                if response.status_code != 200:
                    mine["failures"].append(("next", response.status_code, response.content))
                    continue
                item_id = response.json()["id"]
                posted = post_label(client, project, item_id, labels=["dove"], duration_ms=1)
                if posted.status_code == 201:
                    mine["submitted"].append(item_id)
                else:
                    mine["failures"].append(("submit", posted.status_code, posted.content))
        except Exception as exc:  # reported below
            mine["failures"].append(("exception", repr(exc)))
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert not any(t.is_alive() for t in threads)

    failures = [f for r in results.values() for f in r["failures"]]
    assert failures == []
    gold = set(GoldLabel.objects.values_list("item_id", flat=True))
    counts = {i.pk: Annotation.objects.current().filter(item=i).count() for i in items}
    for item in items:
        needed = 3 if (item.in_consistency_sample or item.pk in gold) else 1
        assert counts[item.pk] == needed, item.pk
    for user in users:
        ids = results[user.pk]["submitted"]
        assert len(ids) == len(set(ids))  # nobody labelled an item twice
    submitted = sum(len(r["submitted"]) for r in results.values())
    assert submitted == Annotation.objects.count() == AnnotationLabel.objects.count() == sum(counts.values())
    assert sum(1 for r in results.values() if r["submitted"]) > 1  # the work really was shared


# ---- Submitting ----------------------------------------------------------------------------------


def test_submit_records_the_label_and_closes_the_lease(project, labeler, api_as):
    Guideline.objects.create(project=project, version=3, text="g", published_at=FROZEN)
    (item,) = add_items(project, 1)
    client = api_as(labeler)
    next_item(client, project)
    client_id = str(uuid.uuid4())
    response = client.post(
        url(project, "annotations/"),
        {"item": item.pk, "labels": ["owl"], "unsure": True, "note": "blurry", "duration_ms": 1234,
         "client_id": client_id},
        format="json",
    )  # fmt: skip
    assert response.status_code == 201
    body = response.json()
    assert body["labels"] == ["owl"] and body["unsure"] and body["note"] == "blurry"
    assert body["client_id"] == client_id and body["guideline_version"] == 3 and body["is_current"]
    annotation = Annotation.objects.get()
    assert (annotation.duration_ms, annotation.source, annotation.guideline.version) == (1234, "human", 3)
    assert [c.name for c in annotation.labels.all()] == ["owl"]
    assert Assignment.objects.get().status == "done"


@pytest.fixture
def served_item(project, labeler, api_as, other_project):
    """An item leased to `labeler`, plus the bits each bad-input case needs."""
    (item,) = add_items(project, 1)
    next_item(api_as(labeler), project)
    crow = project.label_classes.get(name="crow")
    LabelClass.objects.create(project=project, name="raven", order=9, merged_into=crow, is_active=False)
    LabelClass.objects.create(project=project, name="jay", order=10, is_active=False)
    (never_served,) = add_items(project, 1, prefix="unserved")
    (foreign,) = add_items(other_project, 1, prefix="foreign")
    return {"item": item, "never_served": never_served, "foreign": foreign}


BAD_INPUTS = [
    # (case, body changes, status, field, part of the message)
    ("class of another project", {"labels": ["pos"]}, 400, "labels", "'pos' is not a class of this project"),
    ("unknown class", {"labels": ["eagle"]}, 400, "labels", "'eagle' is not a class of this project"),
    ("merged class", {"labels": ["raven"]}, 400, "labels", "'raven' was merged into 'crow'"),
    ("inactive class", {"labels": ["jay"]}, 400, "labels", "'jay' is no longer in use"),
    ("several labels on a single-label project", {"labels": ["crow", "owl"]}, 400, "labels", "exactly one label"),
    ("repeated label", {"labels": ["crow", "crow"]}, 400, "labels", "labels repeat: crow"),
    ("no label", {"labels": []}, 400, "labels", "at least 1 elements"),
    ("labels not a list", {"labels": "crow"}, 400, "labels", "Expected a list"),
    ("item outside the project", {"item": "foreign"}, 400, "item", "there is no item"),
    ("item that does not exist", {"item": 999_999}, 400, "item", "there is no item 999999"),
    ("item never served", {"item": "never_served"}, 400, "item", "you were not served this item"),
    ("item missing", {"item": None}, 400, "item", "may not be null"),
    ("negative duration", {"duration_ms": -5}, 400, "duration_ms", "greater than or equal to 0"),
    ("absurd duration", {"duration_ms": 10**10}, 400, "duration_ms", "less than or equal to"),
    ("oversized note", {"note": "x" * 2001}, 400, "note", "the note has 2,001 characters; the limit is 2,000"),
    ("client_id not a UUID", {"client_id": "retry-1"}, 400, "client_id", "valid UUID"),
    ("client_id missing", {"client_id": None}, 400, "client_id", "may not be null"),
    ("unsure not a boolean", {"unsure": "perhaps"}, 400, "unsure", "valid boolean"),
]


@pytest.mark.parametrize(("case", "changes", "status", "field", "message"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_refused_naming_the_field_and_writes_nothing(
    project, labeler, api_as, served_item, case, changes, status, field, message
):
    body = {"item": served_item["item"].pk, "labels": ["crow"], "client_id": str(uuid.uuid4()), "note": "",
            "duration_ms": 100}  # fmt: skip
    for key, value in changes.items():
        body[key] = served_item[value].pk if isinstance(value, str) and value in served_item else value
    before = written()
    response = api_as(labeler).post(url(project, "annotations/"), body, format="json")
    assert response.status_code == status, response.content
    errors = response.json()[field]
    assert any(message in e for e in errors), errors
    assert written() == before


def test_submitting_a_skipped_item_is_refused(project, labeler, api_as):
    (item,) = add_items(project, 1)
    client = api_as(labeler)
    next_item(client, project)
    assert client.post(url(project, "skips/"), {"item": item.pk}, format="json").status_code == 204
    before = written()
    response = post_label(client, project, item.pk)
    assert (response.status_code, response.json()) == (400, {"item": ["you skipped this item"]})
    assert written() == before


def test_the_same_client_id_twice_creates_one_annotation(project, labeler, api_as):
    add_items(project, 2)
    client = api_as(labeler)
    item_id = next_item(client, project).json()["id"]
    body = {"item": item_id, "labels": ["dove"], "client_id": str(uuid.uuid4()), "duration_ms": 10}
    first = client.post(url(project, "annotations/"), body, format="json")
    again = client.post(url(project, "annotations/"), body, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert Annotation.objects.count() == 1 and AnnotationLabel.objects.count() == 1
    # A retry that changed its mind about the label still gets the first answer back...
    assert client.post(url(project, "annotations/"), {**body, "labels": ["owl"]}, format="json").json() == first.json()
    # ...but a client_id reused for another item is an error.
    other = next_item(client, project).json()["id"]
    reused = client.post(url(project, "annotations/"), {**body, "item": other}, format="json")
    assert reused.status_code == 400 and "already used" in reused.json()["client_id"][0]
    assert Annotation.objects.count() == 1


def test_a_second_label_is_an_edit_with_history_not_a_second_vote(project, labeler, api_as):
    (item,) = add_items(project, 1, sample={0})
    client = api_as(labeler)
    next_item(client, project)
    first = post_label(client, project, item.pk, labels=["crow"]).json()
    second = post_label(client, project, item.pk, labels=["owl"], note="looked again").json()
    assert Annotation.objects.current().filter(item=item).count() == 1
    old, new = Annotation.objects.filter(item=item).order_by("pk")
    assert (old.pk, old.is_current, new.pk, new.is_current) == (first["id"], False, second["id"], True)
    assert [c.name for c in new.labels.all()] == ["owl"] and [c.name for c in old.labels.all()] == ["crow"]
    history = client.get(url(project, "annotations/?history=true")).json()["results"]
    assert [(a["labels"], a["is_current"]) for a in history] == [(["owl"], True), (["crow"], False)]
    assert [a["id"] for a in client.get(url(project, "annotations/")).json()["results"]] == [second["id"]]


def test_multi_label_projects_take_several_labels(project, labeler, api_as):
    project.task_type = "multi_label"
    project.save()
    (item,) = add_items(project, 1)
    client = api_as(labeler)
    next_item(client, project)
    response = post_label(client, project, item.pk, labels=["owl", "crow"])
    assert response.status_code == 201
    assert sorted(response.json()["labels"]) == ["crow", "owl"]


# ---- Skip and undo -------------------------------------------------------------------------------


def test_a_skipped_item_is_not_served_again_to_that_labeler(project, labeler, labeler2, api_as):
    add_items(project, 2)
    client = api_as(labeler)
    first = next_item(client, project).json()["id"]
    assert client.post(url(project, "skips/"), {"item": first}, format="json").status_code == 204
    second = next_item(client, project).json()["id"]
    assert second != first
    post_label(client, project, second)
    assert next_item(client, project).status_code == 204
    assert next_item(api_as(labeler2), project).json()["id"] == first  # its slot went back to the others


def test_skip_refuses_what_was_not_served_or_is_labelled(project, labeler, api_as, other_project):
    (item, unserved) = add_items(project, 2)
    (foreign,) = add_items(other_project, 1)
    client = api_as(labeler)
    served = next_item(client, project).json()["id"]
    post_label(client, project, served)
    before = written()
    for item_id, message in [
        (served, "you already labelled this item"),
        (next(i for i in (item.pk, unserved.pk) if i != served), "you were not served this item"),
        (foreign.pk, "there is no item"),
    ]:
        response = client.post(url(project, "skips/"), {"item": item_id}, format="json")
        assert response.status_code == 400 and message in response.json()["item"][0]
    assert client.post(url(project, "skips/"), {}, format="json").json() == {"item": ["This field is required."]}
    assert written() == before


def test_undo_within_the_window_takes_the_label_back_and_serves_the_item_again(project, labeler, api_as):
    add_items(project, 2)
    client = api_as(labeler)
    served = next_item(client, project).json()["id"]
    annotation = post_label(client, project, served).json()
    response = client.post(url(project, f"annotations/{annotation['id']}/undo/"))
    assert response.status_code == 200 and response.json()["id"] == served
    assert not Annotation.objects.exists() and not AnnotationLabel.objects.exists()
    assert Assignment.objects.get(item_id=served).status == "leased"
    assert next_item(client, project).json()["id"] == served  # back on screen to label again
    assert client.post(url(project, f"annotations/{annotation['id']}/undo/")).status_code == 404
    assert post_label(client, project, served, labels=["owl"]).status_code == 201


def test_undo_after_the_window_is_refused(project, labeler, api_as):
    add_items(project, 1)
    client = api_as(labeler)
    served = next_item(client, project).json()["id"]
    annotation = post_label(client, project, served).json()
    Annotation.objects.update(created_at=timezone.now() - timedelta(seconds=31))
    before = written()
    response = client.post(url(project, f"annotations/{annotation['id']}/undo/"))
    assert response.status_code == 400
    assert response.json() == {"annotation": ["a label can be undone for 30 seconds; change it in My work instead"]}
    assert written() == before


def test_undoing_an_edit_restores_the_previous_version(project, labeler, labeler2, api_as):
    add_items(project, 1)
    client = api_as(labeler)
    served = next_item(client, project).json()["id"]
    first = post_label(client, project, served, labels=["crow"]).json()
    edit = post_label(client, project, served, labels=["owl"]).json()
    assert api_as(labeler2).post(url(project, f"annotations/{edit['id']}/undo/")).status_code == 404  # not theirs
    assert client.post(url(project, f"annotations/{first['id']}/undo/")).json() == {
        "annotation": ["this label was already changed or undone"]
    }
    assert client.post(url(project, f"annotations/{edit['id']}/undo/")).status_code == 200
    (current,) = Annotation.objects.current()
    assert current.pk == first["id"] and [c.name for c in current.labels.all()] == ["crow"]
    assert Assignment.objects.get().status == "done"


# ---- Listing -------------------------------------------------------------------------------------


def test_labelers_list_their_own_annotations_and_staff_list_everyones(project, labeler, labeler2, sme, mle, api_as):
    items = add_items(project, 2, sample={0, 1})
    for user in (labeler, labeler2):
        client = api_as(user)
        for _ in items:
            post_label(client, project, next_item(client, project).json()["id"])
    own = api_as(labeler).get(url(project, "annotations/")).json()
    assert own["count"] == 2 and {a["labeler"] for a in own["results"]} == {"lab1"}
    assert api_as(labeler).get(url(project, "annotations/?labeler=lab2")).json()["count"] == 2  # still only own
    for staff in (sme, mle):
        everyone = api_as(staff).get(url(project, "annotations/")).json()
        assert everyone["count"] == 4 and {a["labeler"] for a in everyone["results"]} == {"lab1", "lab2"}
        assert api_as(staff).get(url(project, "annotations/?labeler=lab2")).json()["count"] == 2
    one = api_as(sme).get(url(project, f"annotations/?item={items[0].pk}")).json()
    assert one["count"] == 2
    assert api_as(sme).get(url(project, "annotations/?item=x")).json() == {"item": ["must be an item id"]}


# ---- Blind ---------------------------------------------------------------------------------------


def _normalised(html):
    """A page's HTML without Django's per-response CSRF token (random on every render)."""
    return re.sub(rb'name="csrfmiddlewaretoken" value="[^"]+"', b'name="csrfmiddlewaretoken" value=""', html)


def test_a_labelers_view_is_byte_identical_whether_others_labelled_it_or_it_is_gold(
    project, labeler, labeler2, sme, mle, client
):
    """The same item served in otherwise equal situations: API JSON, page HTML and query count match."""
    Guideline.objects.create(project=project, version=1, text="# Birds\n\nLook at the beak.", published_at=FROZEN)
    (item,) = add_items(project, 1, sample={0}, metadata={"site": "north", "gold": "owl", "_batch": 7})
    owl = project.label_classes.get(name="owl")
    situations = {
        "alone": [],
        "others labelled it": [
            lambda: label_with(labeler2, project, owl)(item),
            lambda: label_with(sme, project, owl)(item),
        ],
        "gold": [lambda: make_gold(item, "owl")],
        "gold, labelled and leased by others": [
            lambda: make_gold(item, "owl"),
            lambda: label_with(labeler2, project, owl)(item),
            lambda: Assignment.objects.create(item=item, labeler=mle, expires_at=FROZEN + timedelta(minutes=9)),
        ],
    }  # fmt: skip
    views = {}
    client.force_login(labeler)
    api = api_client_for(labeler)
    with mock.patch("django.utils.timezone.now", return_value=FROZEN):
        for name, steps in situations.items():
            sid = transaction.savepoint_create()
            for step in steps:
                step()
            with CaptureQueriesContext(connection) as queries:
                response = next_item(api, project)
            page = client.get(f"/projects/{project.slug}/label/")
            assert response.status_code == 200 and page.status_code == 200
            views[name] = (response.content, _normalised(page.content), len(queries))
            transaction.savepoint_rollback(sid)
    reference = views.pop("alone")
    assert b'"gold"' not in reference[0] and b"owl" not in reference[0]
    assert b"north" in reference[1] and b"_batch" not in reference[1]
    for name, view in views.items():
        assert view[0] == reference[0], name
        assert view[1] == reference[1], name
        assert view[2] == reference[2], name


# ---- Fixed query counts --------------------------------------------------------------------------


def _fill(project, users, n_items):
    """A project of `n_items` with annotations, gold, queue entries and leases."""
    crow = project.label_classes.get(name="crow")
    items = add_items(project, n_items, sample=set(range(0, n_items, 3)), gold=set(range(1, n_items, 7)))
    for i, item in enumerate(items[: n_items // 2]):
        label_with(users[i % len(users)], project, crow)(item)
        if i % 5 == 0:
            QueueEntry.objects.create(project=project, item=item, priority=i, strategy="t")
    labeling.refresh_queue_state(project)


@pytest.mark.parametrize("n_items", [6, 240])
def test_next_item_and_submit_make_a_fixed_number_of_queries(
    project, labeler, labeler2, sme, api_as, n_items, django_assert_num_queries
):
    _fill(project, [labeler2, sme], n_items)
    client = api_as(labeler)
    # project_for (2), savepoint, held lease?, rank new items, savepoint, the 4 sources (1 query),
    # re-count under lock, lease, release, release
    with django_assert_num_queries(11):
        served = next_item(client, project).json()["id"]
    with django_assert_num_queries(5):  # project_for (2), savepoint, held lease, release
        assert next_item(client, project).json()["id"] == served
    # project_for (2), savepoint, lock+read item, replay?, classes, un-current, insert, labels,
    # lease done, item done?, queue entry done?, release
    with django_assert_num_queries(13):
        assert post_label(client, project, served).status_code == 201


@pytest.mark.parametrize("n_labels", [2, 40])
def test_the_annotation_list_makes_a_fixed_number_of_queries(
    project, labeler, sme, api_as, n_labels, django_assert_num_queries
):
    _fill(project, [labeler, sme], n_labels * 2)
    for client in (api_as(labeler), api_as(sme)):
        with django_assert_num_queries(5):  # project_for (2), count, page, labels
            assert client.get(url(project, "annotations/")).status_code == 200


# ---- Who may ------------------------------------------------------------------------------------


def test_every_labeling_endpoint_and_page_answers_404_to_a_non_member(project, labeler, outsider, api_as, client):
    (item,) = add_items(project, 1)
    inside = api_as(labeler)
    next_item(inside, project)
    annotation = post_label(inside, project, item.pk).json()
    outside = api_as(outsider)
    before = written()
    requests = [
        outside.get(url(project, "next-item/")),
        outside.get(url(project, "annotations/")),
        outside.post(url(project, "annotations/"), {"item": item.pk, "labels": ["crow"],
                                                   "client_id": str(uuid.uuid4())}, format="json"),
        outside.post(url(project, f"annotations/{annotation['id']}/undo/")),
        outside.post(url(project, "skips/"), {"item": item.pk}, format="json"),
    ]  # fmt: skip
    client.force_login(outsider)
    slug = project.slug
    requests += [
        client.get(f"/projects/{slug}/label/"),
        client.get(f"/projects/{slug}/my-work/"),
        client.post(f"/projects/{slug}/my-work/{item.pk}/", {"labels": "crow", "client_id": str(uuid.uuid4())}),
        client.post(f"/projects/{slug}/guideline/seen/", {"version": 1}),
    ]
    assert [r.status_code for r in requests] == [404] * len(requests)
    assert written() == before


def test_anonymous_requests_are_turned_away(project, client):
    from rest_framework.test import APIClient

    assert APIClient().get(url(project, "next-item/")).status_code == 401
    assert client.get(f"/projects/{project.slug}/label/").status_code == 302


# ---- Pages ---------------------------------------------------------------------------------------


def test_the_labeling_page_shows_the_item_keys_guideline_and_counts(project, labeler, client):
    Guideline.objects.create(
        project=project, version=2, text="# Birds\n<script>alert(1)</script>\nLook **closely**.", published_at=FROZEN
    )
    add_items(project, 3)
    client.force_login(labeler)
    html = client.get(f"/projects/{project.slug}/label/").content.decode()
    assert html.count('<button type="button" class="classbtn') == 4
    assert '<kbd class="keycap">1</kbd><span class="classbtn__name">crow</span>' in html
    assert 'id="lab-empty" class="card empty lab__empty" tabindex="-1" hidden' in html
    # The guideline is shown as escaped text: no raw HTML survives.
    # The guideline is Markdown rendered safely (markdown + nh3): the script is gone, the heading is HTML.
    assert "<h3>Birds</h3>" in html and "<strong>closely</strong>" in html and "<script>alert" not in html
    assert 'data-testid="guideline-banner"' in html  # never marked as read
    assert '<strong id="lab-done">0</strong>' in html and '<strong id="lab-left">3</strong>' in html
    assert Assignment.objects.filter(labeler=labeler, status="leased").count() == 1


def test_the_guideline_banner_goes_once_read_and_comes_back_with_a_new_version(project, labeler, client):
    Guideline.objects.create(project=project, version=1, text="one", published_at=FROZEN)
    client.force_login(labeler)
    page = f"/projects/{project.slug}/label/"
    assert b"guideline-banner" in client.get(page).content
    response = client.post(f"/projects/{project.slug}/guideline/seen/", {"version": 1})
    assert response.status_code == 302 and response["Location"] == page
    assert Membership.objects.get(user=labeler).last_seen_guideline_version == 1
    assert b"guideline-banner" not in client.get(page).content
    Guideline.objects.create(project=project, version=2, text="two", published_at=FROZEN)
    assert b"Guideline v2</strong> was published" in client.get(page).content
    client.post(f"/projects/{project.slug}/guideline/seen/", {"version": 7})  # no such version: ignored
    assert Membership.objects.get(user=labeler).last_seen_guideline_version == 1


def test_a_text_item_is_shown_as_escaped_text(other_project, client):
    user = make_user("reader")
    Membership.objects.create(user=user, project=other_project, role="labeler")
    Item.objects.create(project=other_project, external_id="r1", split="train", text="Great <b>phone</b>\nbut slow")
    client.force_login(user)
    html = client.get(f"/projects/{other_project.slug}/label/").content.decode()
    assert '<div id="lab-text" class="lab__text">Great &lt;b&gt;phone&lt;/b&gt;\nbut slow</div>' in html
    assert 'id="lab-image"' not in html
    assert html.count('<button type="button" class="classbtn') == 2


def test_the_labeling_page_says_when_the_queue_is_empty(project, labeler, client):
    client.force_login(labeler)
    html = client.get(f"/projects/{project.slug}/label/").content.decode()
    assert "Nothing left for you to label" in html
    assert 'id="lab-empty" class="card empty lab__empty" tabindex="-1">' in html
    assert 'id="lab-work" class="lab__work" hidden' in html


def test_my_work_lists_own_labels_and_changes_one_with_history(project, labeler, labeler2, api_as, client):
    items = add_items(project, 3, sample={0, 1, 2})
    for user in (labeler, labeler2):
        c = api_as(user)
        for _ in range(2):
            post_label(c, project, next_item(c, project).json()["id"], labels=["dove"])
    client.force_login(labeler)
    html = client.get(f"/projects/{project.slug}/my-work/").content.decode()
    mine = set(Annotation.objects.filter(labeler=labeler).values_list("item_id", flat=True))
    rows = set(map(int, re.findall(r'<tr data-item="(\d+)">', html)))
    assert rows == mine and len(rows) == 2
    target = sorted(mine)[0]
    client_id = re.search(rf'my-work/{target}/".*?name="client_id" value="([^"]+)"', html, re.S).group(1)
    response = client.post(
        f"/projects/{project.slug}/my-work/{target}/",
        {"labels": "owl", "unsure": "on", "note": "the beak", "client_id": client_id, "page": "1"},
    )
    assert response.status_code == 302 and response["Location"].endswith("/my-work/?page=1")
    versions = Annotation.objects.filter(labeler=labeler, item_id=target).order_by("pk")
    assert [(a.is_current, [c.name for c in a.labels.all()]) for a in versions] == [(False, ["dove"]), (True, ["owl"])]
    assert versions[1].unsure and versions[1].note == "the beak"
    html = client.get(f"/projects/{project.slug}/my-work/").content.decode()
    assert "edited (1)" in html and f"Item {target} is now labelled owl." in html
    # Resending the same form (a double click) changes nothing more.
    client.post(f"/projects/{project.slug}/my-work/{target}/", {"labels": "owl", "client_id": client_id})
    assert Annotation.objects.filter(labeler=labeler, item_id=target).count() == 2
    # A bad change is refused with a message, nothing written.
    before = written()
    client.post(f"/projects/{project.slug}/my-work/{target}/", {"labels": "eagle", "client_id": str(uuid.uuid4())})
    assert written() == before
    assert (
        "&#x27;eagle&#x27; is not a class of this project"
        in client.get(f"/projects/{project.slug}/my-work/").content.decode()
    )
    # Items the labeler never labelled cannot be "changed".
    other = next(i.pk for i in items if i.pk not in mine)
    assert (
        client.post(f"/projects/{project.slug}/my-work/{other}/", {"labels": "owl", "client_id": client_id}).status_code
        == 404
    )


def test_a_long_text_item_is_sent_once_in_the_labeling_page(other_project, client):
    # The stage holds the text; the script's config carries the item without it (it reads the stage).
    user = make_user("reader")
    Membership.objects.create(user=user, project=other_project, role="labeler")
    text = "".join(f"line {n} of a long review\n" for n in range(40_000))  # about 1 MB
    Item.objects.create(project=other_project, external_id="long", split="train", text=text)
    client.force_login(user)
    html = client.get(f"/projects/{other_project.slug}/label/").content.decode()
    assert len(text) > 1_000_000 and len(html) < len(text) + 50_000
    assert html.count("line 39999 of a long review") == 1
    config = re.search(r'<script id="lab-config" type="application/json">(.*?)</script>', html, re.S).group(1)
    assert '"text":' not in config and '"id": ' in config


def test_the_guideline_is_marked_read_by_the_page_script_without_a_redirect(project, labeler, client):
    Guideline.objects.create(project=project, version=1, text="one", published_at=FROZEN)
    client.force_login(labeler)
    seen = f"/projects/{project.slug}/guideline/seen/"
    response = client.post(seen, {"version": 1}, headers={"Accept": "application/json"})
    assert (response.status_code, response.json()) == (200, {"version": 1})
    assert Membership.objects.get(user=labeler).last_seen_guideline_version == 1
    response = client.post(seen, {"version": 7}, headers={"Accept": "application/json"})
    assert (response.status_code, response.json()) == (400, {"version": ["That guideline version does not exist."]})
    response = client.post(seen, {"version": "x"}, headers={"Accept": "application/json"})
    assert response.status_code == 400
    assert Membership.objects.get(user=labeler).last_seen_guideline_version == 1
    html = client.get(f"/projects/{project.slug}/label/").content.decode()
    assert "guideline-banner" not in html


@pytest.mark.skipif(connection.vendor != "postgresql", reason="threads need PostgreSQL; SQLite serialises writers")
@pytest.mark.django_db(transaction=True)
def test_retries_of_one_client_id_arriving_together_make_one_annotation(project, labeler):
    """The page retries a submit whose answer was lost; the retries may reach the server at once."""
    add_items(project, 1)
    item_id = next_item(api_client_for(labeler), project).json()["id"]
    body = {"item": item_id, "labels": ["owl"], "client_id": str(uuid.uuid4())}
    start = threading.Barrier(6)
    answers = []

    def retry():
        try:
            client = api_client_for(labeler)
            start.wait()
            response = client.post(url(project, "annotations/"), body, format="json")
            answers.append((response.status_code, response.json()["id"]))
        finally:
            connection.close()

    threads = [threading.Thread(target=retry) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(status for status, _ in answers) == [200] * 5 + [201]
    assert len({pk for _, pk in answers}) == 1
    assert Annotation.objects.count() == AnnotationLabel.objects.count() == 1
