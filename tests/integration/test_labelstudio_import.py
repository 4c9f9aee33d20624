"""Label Studio JSON and Concord JSONL imports: what lands, bad input row by row, roles, the API for
annotations and gold, predictions kept from labelers, and large uploads run by a real worker."""

import codecs
import json
import time
import uuid

import pytest
from django.core.management import call_command
from django.urls import reverse

from annotation.errors import ImportRejected
from annotation.models import Annotation, GoldLabel, ImportBatch, Item, ItemPrediction, Membership
from annotation.services import labelstudio_import, queued_import
from annotation.services.labelstudio_import import import_labels_jsonl, import_labelstudio, prediction_scores
from annotation.services.projects import create_project
from tests.conftest import make_user

from .imaging import png_bytes, zip_bytes

pytestmark = pytest.mark.django_db
SECRET_SOURCE = "secret-model-v7"
SECRET_SCORE = 0.123457


@pytest.fixture
def news(db):
    return create_project(
        slug="news", name="News", data_kind="text", classes=["pos", "neg", "neutral"], overlap=3,
        consistency_fraction=0.5,
    )  # fmt: skip


@pytest.fixture
def people(news):
    """An MLE, an SME and a labeler of `news`, and an MLE of another project."""
    roles = {}
    for name, role in (("news-mle", "mle"), ("news-sme", "sme"), ("news-lab", "labeler")):
        roles[role] = make_user(name)
        Membership.objects.create(user=roles[role], project=news, role=role)
    other = create_project(slug="elsewhere", name="Elsewhere", data_kind="text", classes=["a", "b"])
    roles["outsider"] = make_user("outsider-mle")
    Membership.objects.create(user=roles["outsider"], project=other, role="mle")
    return roles


def choices(*names, **extra):
    return [
        {"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": list(names)}, **extra}
    ]


def annotation(labeler, *names, **extra):
    return {"completed_by": labeler, "result": choices(*names), "was_cancelled": False, **extra}


def task(external_id, text, annotations=(), predictions=(), **data):
    return {
        "id": 100 + len(str(external_id)),
        "data": {"external_id": external_id, "text": text, **data},
        "annotations": list(annotations),
        "predictions": list(predictions),
    }


def write(tmp_path, content, name="tasks.json"):
    path = tmp_path / name
    if isinstance(content, (list, dict)):
        content = json.dumps(content)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def labels_of(project):
    """{(external id, worker): ([class names], unsure, note)} of the current annotations."""
    rows = Annotation.objects.current().filter(item__project=project).select_related("item", "labeler")
    return {
        (a.item.external_id, a.labeler.username.rsplit("@", 1)[0]): (
            sorted(c.name for c in a.labels.all()),
            a.unsure,
            a.note,
        )
        for a in rows.prefetch_related("labels")
    }


def gold_of(project):
    return {
        g.item.external_id: sorted(c.name for c in g.labels.all())
        for g in GoldLabel.objects.filter(item__project=project).select_related("item").prefetch_related("labels")
    }


def good_tasks():
    return [
        task(
            "n1", "Great phone, would buy again", noise="none", split="dev",
            annotations=[
                annotation({"email": "ann@example.com", "id": 3}, "pos"),
                annotation(7, "neg", unsure=True, note="sarcasm?"),
                {"completed_by": 9, "result": [], "was_cancelled": True},
                annotation(None, "pos", ground_truth=True),
            ],
            predictions=[{"model_version": SECRET_SOURCE, "score": 0.5,
                          "result": choices("pos", score=SECRET_SCORE)}],
        ),
        task("n2", "Battery died in a day", annotations=[annotation("bob", "neg")],
             predictions=[{"result": choices("neg"), "score": 0.8}]),
        task("n3", "It is a phone"),
    ]  # fmt: skip


# --- what a Label Studio import writes -----------------------------------------------------------


def test_label_studio_json_brings_tasks_labels_gold_and_predictions(news, tmp_path):
    batch = import_labelstudio(news, write(tmp_path, good_tasks()))

    assert (batch.kind, batch.status, batch.rejected_count, batch.errors) == ("labelstudio", "done", 0, [])
    items = {i.external_id: i for i in Item.objects.filter(project=news)}
    assert sorted(items) == ["n1", "n2", "n3"]
    assert items["n1"].text == "Great phone, would buy again" and items["n1"].metadata == {"noise": "none"}
    assert items["n1"].split == "dev" and items["n3"].text == "It is a phone"
    labels = labels_of(news)
    workers = {worker for _, worker in labels}
    assert len(workers) == 3 and "7" in workers and "bob" in workers
    ann = next(w for w in workers if w.startswith("ann"))
    assert labels == {
        ("n1", ann): (["pos"], False, ""),
        ("n1", "7"): (["neg"], True, "sarcasm?"),
        ("n2", "bob"): (["neg"], False, ""),
    }
    assert gold_of(news) == {"n1": ["pos"]}
    predictions = {
        (p.item.external_id, p.source, p.label_class.name): p.score
        for p in ItemPrediction.objects.select_related("item", "label_class")
    }
    assert predictions == {("n1", SECRET_SOURCE, "pos"): SECRET_SCORE, ("n2", "labelstudio", "neg"): 0.8}
    assert batch.summary["items_created"] == 3 and batch.summary["predictions_created"] == 2
    assert prediction_scores(news) == {items["n1"].pk: {"pos": SECRET_SCORE}, items["n2"].pk: {"neg": 0.8}}
    assert prediction_scores(news, source="labelstudio") == {items["n2"].pk: {"neg": 0.8}}


def test_a_second_import_of_the_same_file_adds_nothing_and_a_changed_score_replaces_the_old(news, tmp_path):
    import_labelstudio(news, write(tmp_path, good_tasks()))
    before = (Item.objects.count(), Annotation.objects.count(), GoldLabel.objects.count())
    again = import_labelstudio(news, write(tmp_path, good_tasks()))
    assert (Item.objects.count(), Annotation.objects.count(), GoldLabel.objects.count()) == before
    assert again.summary["items_created"] == 0 and again.summary["annotations_created"] == 0
    assert again.summary["predictions_skipped"] == 2 and again.summary["predictions_created"] == 0

    changed = good_tasks()
    changed[1]["predictions"][0]["score"] = 0.3
    third = import_labelstudio(news, write(tmp_path, changed))
    assert third.summary["predictions_updated"] == 1
    assert ItemPrediction.objects.get(item__external_id="n2").score == 0.3


def test_a_label_studio_zip_brings_images_found_by_file_name_never_by_download(project, tmp_path):
    tasks = [
        {"id": 1, "data": {"image": "/data/upload/3/1a2b3c4d-crow1.png"},
         "annotations": [annotation("ann", "crow")]},
        {"id": 2, "data": {"image": "https://example.com/pics/dove.png", "noise": "wind"}},
        {"id": 3, "data": {"image": "https://example.com/pics/missing.png"}},
    ]  # fmt: skip
    archive = zip_bytes({"export.json": json.dumps(tasks).encode(), "crow1.png": png_bytes(10),
                         "pics/dove.png": png_bytes(200)})  # fmt: skip
    batch = import_labelstudio(project, write(tmp_path, archive, "export.zip"))

    items = {i.external_id: i for i in Item.objects.filter(project=project)}
    assert sorted(items) == ["1", "2"]
    assert items["1"].image.name.startswith(f"items/{project.pk}/") and items["1"].width == 16
    assert items["2"].metadata == {"noise": "wind"}
    assert batch.errors == [
        {
            "row": 3,
            "field": "data.image",
            "message": "'https://example.com/pics/missing.png' is not in the uploaded zip",
        }
    ]
    assert labels_of(project) == {("1", "ann"): (["crow"], False, "")}

    json_only = import_labelstudio(project, write(tmp_path, [{"id": 9, "data": {"image": "http://x/y.png"}}]))
    assert json_only.rejected_count == 1 and "never downloads" in json_only.errors[0]["message"]


def test_a_multi_label_project_takes_several_choices_as_one_annotation(tmp_path):
    tags = create_project(
        slug="tags", name="Tags", data_kind="text", classes=["red", "round", "big"], task_type="multi_label"
    )
    tasks = [task("m1", "a red ball", annotations=[annotation("ann", "red", "round")],
                  predictions=[{"model_version": "v1", "result": choices("red", "big", score=0.6)}])]  # fmt: skip
    batch = import_labelstudio(tags, write(tmp_path, tasks))
    assert batch.rejected_count == 0
    assert labels_of(tags) == {("m1", "ann"): (["red", "round"], False, "")}
    assert prediction_scores(tags) == {Item.objects.get(external_id="m1").pk: {"red": 0.6, "big": 0.6}}


# --- bad input: a message naming the row and field, good rows land, nothing partial ---------------


def bad_tasks():
    """Task 1 is good; every other one has one thing wrong (the expected field in the comment)."""
    return [
        task("ok", "fine text", annotations=[annotation("ann", "pos")]),
        {"data": {"external_id": "no-text", "text": 5}},  # data.text
        task("unknown", "text 3", annotations=[annotation("ann", "pos"), annotation("bob", "great")]),
        task("two", "text 4", annotations=[annotation("ann", "pos", "neg")]),
        task("pred", "text 5", predictions=[{"result": choices("excellent"), "score": 0.9}]),
        task("ok", "text 6"),  # the id of task 1 again
        task("who", "text 7", annotations=[{"result": choices("pos")}]),
        task("form", "text 8", annotations=[{"completed_by": "ann", "result": "pos"}]),
        task("nested", "text 9", tags=["a", "b"]),
        {"data": {"external_id": "split", "text": "text 10", "split": "validation"}},
        task("score", "text 11", predictions=[{"result": choices("pos"), "score": "high"}]),
        "just a string",
    ]


EXPECTED_BAD = [
    (2, "data.text", "has no text"),
    (3, "annotations[1].result[0].value.choices", "unknown label 'great'"),
    (4, "annotations[0].result[0].value.choices", "holds 2 classes ('pos', 'neg'); this project is single-label"),
    (5, "predictions[0].result[0].value.choices", "a prediction for an unknown class 'excellent'"),
    (6, "data.external_id", "duplicate id 'ok': row 1 has it already"),
    (7, "annotations[0].completed_by", "names no labeler"),
    (8, "annotations[0].result", "result must be a list"),
    (9, "data.tags", "metadata values must be text, numbers or booleans"),
    (10, "data.split", "split must be one of train, dev, test"),
    (11, "predictions[0].score", "score must be a finite number"),
    (12, "task", "each task must be a JSON object"),
]


def assert_errors(batch, expected):
    got = [(e["row"], e["field"], e["message"]) for e in batch.errors]
    assert [(r, f) for r, f, _ in got] == [(r, f) for r, f, _ in expected], got
    for (_, _, message), (_, _, part) in zip(got, expected, strict=True):
        assert part in message


def test_every_bad_task_is_named_by_row_and_field_and_only_the_good_one_lands(news, tmp_path):
    batch = import_labelstudio(news, write(tmp_path, bad_tasks()))
    assert_errors(batch, EXPECTED_BAD)
    assert batch.rejected_count == len(EXPECTED_BAD)
    assert list(Item.objects.filter(project=news).values_list("external_id", flat=True)) == ["ok"]
    # Task 3's first annotation was good, but the task is refused whole.
    assert labels_of(news) == {("ok", "ann"): (["pos"], False, "")}
    assert not ItemPrediction.objects.exists()


def test_a_huge_text_is_a_row_error_and_the_rest_land(news, tmp_path, settings):
    settings.CONCORD_IMPORT = {**settings.CONCORD_IMPORT, "MAX_TEXT_CHARS": 1000}
    batch = import_labelstudio(news, write(tmp_path, [task("big", "x" * 5000), task("small", "y")]))
    assert_errors(batch, [(1, "data.text", "the text has 5,000 characters; the limit is 1,000")])
    assert list(Item.objects.values_list("external_id", flat=True)) == ["small"]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "is empty"),
        (b"   \n", "is empty"),
        (b"[]", "holds no tasks"),
        (b'{"data": {"text": "a"}} trailing', "is not valid JSON: Extra data at line 1"),
        (b'[{"data": {"text": "a"}},\n{"data": \n', "is not valid JSON"),
        (
            '[{"data": {"external_id": "é", "text": "café"}}]'.encode("latin-1"),
            "is not UTF-8 text: byte 0xe9 on line 1",
        ),
        (b'"a string"', "must hold a JSON array of Label Studio tasks"),
    ],
)
def test_a_file_that_cannot_be_read_as_a_whole_is_refused_and_writes_nothing(news, tmp_path, content, message):
    with pytest.raises(ImportRejected) as refused:
        import_labelstudio(news, write(tmp_path, content))
    assert message in refused.value.message and refused.value.field == "file"
    assert not ImportBatch.objects.exists() and not Item.objects.exists()


def test_utf16_with_a_byte_order_mark_is_read(news, tmp_path):
    content = codecs.BOM_UTF16_LE + json.dumps([task("u", "naïve café")], ensure_ascii=False).encode("utf-16-le")
    import_labelstudio(news, write(tmp_path, content))
    assert Item.objects.get(external_id="u").text == "naïve café"


# --- Concord JSONL ----------------------------------------------------------------------------------


def jsonl(*objects):
    return "\n".join(o if isinstance(o, str) else json.dumps(o) for o in objects) + "\n"


def test_concord_jsonl_brings_labels_gold_metadata_and_split(news, tmp_path):
    content = jsonl(
        {"external_id": "a", "split": "test", "metadata": {"noise": "car"}, "text": "alpha",
         "final_label": "pos", "final_label_source": "gold",
         "labels": [{"labeler": "ann", "label": "pos", "unsure": False, "note": ""},
                    {"labeler": "bob", "label": "neg", "unsure": True, "note": "hmm"}]},
        {"external_id": "b", "final_label": {"label": "neg", "source": "consensus"},
         "labels": [{"labeler": "ann", "label": "neg"}]},
        {"external_id": "c", "gold": "neutral"},
    )  # fmt: skip
    batch = import_labels_jsonl(news, write(tmp_path, content, "labels.jsonl"))
    assert (batch.kind, batch.rejected_count) == ("annotations", 0)
    a = Item.objects.get(external_id="a")
    assert (a.split, a.metadata, a.text) == ("test", {"noise": "car"}, "alpha")
    assert labels_of(news) == {
        ("a", "ann"): (["pos"], False, ""),
        ("a", "bob"): (["neg"], True, "hmm"),
        ("b", "ann"): (["neg"], False, ""),
    }
    # Consensus is derived again here, not imported as truth.
    assert gold_of(news) == {"a": ["pos"], "c": ["neutral"]}


def test_concord_jsonl_bad_lines_are_named_and_the_good_ones_land(news, tmp_path, settings):
    settings.CONCORD_IMPORT = {**settings.CONCORD_IMPORT, "MAX_TEXT_CHARS": 10}  # a line: 4 texts + 1 MB
    good = {"external_id": "good", "labels": [{"labeler": "ann", "label": "pos"}]}
    lines = [
        json.dumps(good).encode(),
        b'{"external_id": "broken", "labels": [',
        json.dumps({"external_id": "caf\u00e9", "labels": []}, ensure_ascii=False).encode("latin-1"),
        json.dumps({"labels": [{"labeler": "ann", "label": "pos"}]}).encode(),
        json.dumps({"external_id": "unk", "labels": [{"labeler": "ann", "label": "great"}]}).encode(),
        json.dumps({"external_id": "good", "labels": []}).encode(),
        json.dumps({"external_id": "two", "labels": [{"labeler": "ann", "label": ["pos", "neg"]}]}).encode(),
        json.dumps({"external_id": "huge", "text": "z" * 1_100_000}).encode(),
        json.dumps({"external_id": "nolab", "labels": [{"label": "pos"}]}).encode(),
        json.dumps({"external_id": "last", "labels": [{"labeler": "bob", "label": "neg"}]}).encode(),
    ]
    batch = import_labels_jsonl(news, write(tmp_path, b"\n".join(lines), "labels.jsonl"))
    assert_errors(
        batch,
        [
            (2, "line", "not valid JSON"),
            (3, "line", "is not UTF-8: byte 0xe9"),
            (4, "external_id", "external_id is missing"),
            (5, "labels[0].label", "unknown label 'great'"),
            (6, "external_id", "duplicate id 'good': row 1 has it already"),
            (7, "labels[0].label", "holds 2 classes"),
            (8, "line", "the most a line may hold is 1,000,040"),
            (9, "labels[0].labeler", "names no labeler"),
        ],
    )
    assert labels_of(news) == {("good", "ann"): (["pos"], False, ""), ("last", "bob"): (["neg"], False, "")}


def test_concord_jsonl_in_utf16_with_a_byte_order_mark_and_an_empty_one(news, tmp_path):
    content = jsonl({"external_id": "ü", "labels": [{"labeler": "ann", "label": "pos"}]})
    import_labels_jsonl(news, write(tmp_path, codecs.BOM_UTF16_BE + content.encode("utf-16-be"), "l.jsonl"))
    assert labels_of(news) == {("ü", "ann"): (["pos"], False, "")}
    with pytest.raises(ImportRejected, match="is empty"):
        import_labels_jsonl(news, write(tmp_path, b"\n\n", "empty.jsonl"))


# --- the API: roles, annotations and gold, predictions for staff only -----------------------------


def upload(client, url, name, content, **fields):
    from django.core.files.uploadedfile import SimpleUploadedFile

    data = {"file": SimpleUploadedFile(name, content if isinstance(content, bytes) else content.encode()), **fields}
    return client.post(url, data, format="multipart")


@pytest.mark.parametrize("route", ["api:import-labelstudio", "api:import-annotations"])
def test_imports_are_for_mles_sme_gets_403_labeler_and_outsider_404(news, people, api_as, route):
    url = reverse(route, args=[news.pk])
    content = json.dumps(good_tasks())
    assert upload(api_as(people["labeler"]), url, "t.json", content).status_code == 404
    assert upload(api_as(people["outsider"]), url, "t.json", content).status_code == 404
    assert upload(api_as(people["sme"]), url, "t.json", content).status_code == 403
    assert not ImportBatch.objects.exists()
    response = upload(api_as(people["mle"]), url, "t.json", content)
    assert response.status_code == 201, response.data
    assert response.data["status"] == "done" and response.data["created_by"] == "news-mle"
    assert response.data["summary"]["items_created"] == 3


def test_annotations_and_gold_as_csv_through_the_api_with_the_row_level_report(news, people, api_as):
    from django.core.files.uploadedfile import SimpleUploadedFile

    url = reverse("api:import-annotations", args=[news.pk])
    client = api_as(people["mle"])
    labels = "item,worker,answer\na,w1,pos\na,w2,great\nb,w1,neg\n"
    truth = "item,truth\na,pos\nb,nope\n"
    response = client.post(
        url,
        {"file": SimpleUploadedFile("crowd.csv", labels.encode()), "truth": SimpleUploadedFile("t.csv", truth.encode()),
         "columns": "item,worker,answer", "truth_columns": "item,truth"},
        format="multipart",
    )  # fmt: skip
    assert response.status_code == 201, response.data
    assert [(e["row"], e["field"]) for e in response.data["errors"]] == [(3, "label"), (3, "label")]
    assert "unknown label 'great'" in response.data["errors"][0]["message"]
    assert response.data["errors"][1]["file"] == "t.csv" and "'nope'" in response.data["errors"][1]["message"]
    assert labels_of(news) == {("a", "w1"): (["pos"], False, ""), ("b", "w1"): (["neg"], False, "")}
    assert gold_of(news) == {"a": ["pos"]}

    missing = upload(client, url, "crowd.csv", labels)
    assert missing.status_code == 400 and "columns" in missing.data
    wrong = upload(client, url, "crowd.csv", labels, columns="item,worker")
    assert wrong.status_code == 400 and "takes 3 comma-separated column names" in str(wrong.data["columns"])
    empty = upload(client, url, "crowd.csv", b"", columns="item,worker,answer")
    assert empty.status_code == 400 and "is empty" in str(empty.data["file"])
    bad_json = upload(client, url, "x.json", b"[{")
    assert bad_json.status_code == 400 and "is not valid JSON" in str(bad_json.data["file"])
    not_for_json = upload(client, url, "x.jsonl", b"{}", columns="a,b,c")
    assert not_for_json.status_code == 400 and "only for csv files" in str(not_for_json.data["columns"])


def test_jsonl_through_the_api(news, people, api_as):
    url = reverse("api:import-annotations", args=[news.pk])
    content = jsonl({"external_id": "a", "labels": [{"labeler": "ann", "label": "pos"}]}, '{"external_id": ')
    response = upload(api_as(people["mle"]), url, "labels.jsonl", content)
    assert response.status_code == 201
    assert [(e["row"], e["field"]) for e in response.data["errors"]] == [(2, "line")]
    assert labels_of(news) == {("a", "ann"): (["pos"], False, "")}


def test_predictions_reach_smes_and_mles_never_labelers(news, people, api_as, client, tmp_path):
    import_labelstudio(news, write(tmp_path, good_tasks()))
    url = reverse("api:prediction-list", args=[news.pk])
    for role in ("sme", "mle"):
        response = api_as(people[role]).get(url)
        assert response.status_code == 200
        assert {(r["external_id"], r["source"], r["label"]) for r in response.data["results"]} == {
            ("n1", SECRET_SOURCE, "pos"), ("n2", "labelstudio", "neg"),
        }  # fmt: skip
    n1 = Item.objects.get(external_id="n1")
    assert [r["score"] for r in api_as(people["sme"]).get(url, {"item": n1.pk}).data["results"]] == [SECRET_SCORE]
    assert api_as(people["sme"]).get(url, {"item": "x"}).status_code == 400
    assert api_as(people["labeler"]).get(url).status_code == 404
    assert api_as(people["outsider"]).get(url).status_code == 404

    # Everything a labeler is served: next items, their own annotations, the labeling pages.
    labeler = people["labeler"]
    api = api_as(labeler)
    seen = []
    for _ in range(3):
        response = api.get(reverse("api:next-item", args=[news.pk]))
        if response.status_code != 200:
            break
        seen.append(json.dumps(response.data, default=str))
        body = {"item": response.data["id"], "labels": ["pos"], "client_id": str(uuid.uuid4())}
        assert api.post(reverse("api:annotation-list", args=[news.pk]), body, format="json").status_code == 201
    assert seen, "the labeler was served nothing"
    seen.append(json.dumps(api.get(reverse("api:annotation-list", args=[news.pk])).data, default=str))
    client.force_login(labeler)
    for name in ("labeling:label", "labeling:my-work"):
        page = client.get(reverse(name, args=[news.slug]))
        assert page.status_code == 200
        seen.append(page.content.decode())
    project_page = client.get(reverse("frontend:project-detail", args=[news.slug]))
    seen.append(project_page.content.decode())
    for text in seen:
        assert SECRET_SOURCE not in text and str(SECRET_SCORE) not in text and "prediction" not in text.lower()


# --- the commands -------------------------------------------------------------------------------


def test_the_commands_read_label_studio_json_and_concord_jsonl(news, tmp_path, capsys):
    call_command("import_items", "news", str(write(tmp_path, good_tasks())))
    assert Item.objects.filter(project=news).count() == 3 and ItemPrediction.objects.count() == 2
    content = jsonl({"external_id": "n3", "labels": [{"labeler": "cy", "label": "neutral"}]}, "{")
    call_command("import_annotations", "news", str(write(tmp_path, content, "more.jsonl")))
    out = capsys.readouterr()
    assert "1 labels created" in out.out and "rejected row 2 [line]" in out.err
    assert labels_of(news)[("n3", "cy")] == (["neutral"], False, "")


# --- large uploads: queued, run by a worker, safe to run again ------------------------------------


def test_a_large_upload_is_queued_and_a_killed_run_is_run_again(news, people, api_as, settings, monkeypatch):
    settings.CONCORD_IMPORT = {**settings.CONCORD_IMPORT, "QUEUE_ABOVE_BYTES": 10}
    response = upload(api_as(people["mle"]), reverse("api:import-labelstudio", args=[news.pk]), "t.json",
                      json.dumps(good_tasks()))  # fmt: skip
    assert response.status_code == 202 and response.data["status"] == "queued"
    batch_id = response.data["id"]
    folder = queued_import.folder_of(batch_id)
    assert [p.name for p in folder.rglob("*.json")] == ["t.json"]
    assert not Item.objects.exists()

    def killed(*args, **kwargs):
        raise SystemExit("worker killed")  # not an Exception: nothing in the import catches it

    monkeypatch.setattr(labelstudio_import, "_write_predictions", killed)
    with pytest.raises(SystemExit):
        queued_import.run(batch_id)
    batch = ImportBatch.objects.get(pk=batch_id)
    assert batch.status == "running" and not Item.objects.exists() and folder.exists()

    monkeypatch.undo()
    assert queued_import.run(batch_id) == "done"
    batch.refresh_from_db()
    assert batch.summary["items_created"] == 3 and batch.created_by.username == "news-mle"
    assert Item.objects.count() == 3 and ItemPrediction.objects.count() == 2 and not folder.exists()
    assert queued_import.run(batch_id) == "done"  # a redelivery after the commit changes nothing
    assert Item.objects.count() == 3

    detail = api_as(people["mle"]).get(reverse("api:import-detail", args=[news.pk, batch_id]))
    assert detail.data["status"] == "done" and detail.data["summary"]["predictions_created"] == 2


def test_a_queued_file_that_cannot_be_read_fails_the_batch_with_its_message(news, people, api_as, settings):
    settings.CONCORD_IMPORT = {**settings.CONCORD_IMPORT, "QUEUE_ABOVE_BYTES": 10}
    response = upload(api_as(people["mle"]), reverse("api:import-annotations", args=[news.pk]), "t.json",
                      b"[{ not json at all")  # fmt: skip
    assert response.status_code == 202
    assert queued_import.run(response.data["id"]) == "failed"
    batch = ImportBatch.objects.get(pk=response.data["id"])
    assert batch.errors[0]["field"] == "file" and "is not valid JSON" in batch.errors[0]["message"]
    assert not queued_import.folder_of(batch.pk).exists()


def test_a_large_item_upload_on_the_old_endpoint_is_queued_too(news, people, api_as, settings):
    settings.CONCORD_IMPORT = {**settings.CONCORD_IMPORT, "QUEUE_ABOVE_BYTES": 10}
    url = reverse("api:import-list", args=[news.pk])
    response = upload(api_as(people["mle"]), url, "texts.csv", "external_id,text\na,alpha\nb,beta\n")
    assert response.status_code == 202 and response.data["kind"] == "texts"
    assert not Item.objects.exists()
    assert queued_import.run(response.data["id"]) == "done"
    batch = ImportBatch.objects.get(pk=response.data["id"])
    assert (batch.status, batch.created_count, batch.source_name) == ("done", 2, "texts.csv")
    assert sorted(Item.objects.values_list("external_id", flat=True)) == ["a", "b"]
    small = upload(api_as(people["mle"]), url, "t.csv", "external_id,text\nc,gamma\n")
    settings.CONCORD_IMPORT = {**settings.CONCORD_IMPORT, "QUEUE_ABOVE_BYTES": 10_000}
    assert small.status_code == 202  # still over 10 bytes when it was sent
    small = upload(api_as(people["mle"]), url, "t2.csv", "external_id,text\nd,delta\n")
    assert small.status_code == 201 and small.data["status"] == "done"


@pytest.mark.celery
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_imports_a_queued_upload(settings, api_as):
    """A Celery worker (solo pool, in a thread) takes the queued import from the configured broker
    (Redis in CI) on a queue of its own; the batch goes queued -> done and its file is removed."""
    from uuid import uuid4

    from celery.contrib.testing.worker import start_worker

    from config.celery import app

    queue = f"concord-test-imports-{uuid4().hex[:8]}"
    settings.CONCORD_IMPORT = {**settings.CONCORD_IMPORT, "QUEUE_ABOVE_BYTES": 10, "QUEUE": queue}
    project = create_project(slug="news", name="News", data_kind="text", classes=["pos", "neg", "neutral"])
    mle = make_user("worker-test-mle")
    Membership.objects.create(user=mle, project=project, role="mle")
    tasks = good_tasks() + [task(f"bulk{i}", f"bulk text {i}", annotations=[annotation("ann", "pos")])
                            for i in range(200)]  # fmt: skip
    with start_worker(app, perform_ping_check=False, pool="solo", queues=[queue], loglevel="WARNING"):
        response = upload(api_as(mle), reverse("api:import-labelstudio", args=[project.pk]), "big.json",
                          json.dumps(tasks))  # fmt: skip
        assert response.status_code == 202, response.data
        batch = ImportBatch.objects.get(pk=response.data["id"])
        deadline = time.monotonic() + 120
        while batch.status not in ("done", "failed") and time.monotonic() < deadline:
            time.sleep(0.3)
            batch.refresh_from_db()
    assert batch.status == "done", (batch.status, batch.errors)
    assert batch.summary["items_created"] == 203 and batch.summary["annotations_created"] == 203
    assert Item.objects.filter(project=project).count() == 203
    assert not queued_import.folder_of(batch.pk).exists()


def test_a_queued_import_that_runs_out_of_retries_fails_with_the_reason(news, people, api_as, settings, monkeypatch):
    from django.db import OperationalError

    from annotation.tasks import run_queued_import

    settings.CONCORD_IMPORT = {**settings.CONCORD_IMPORT, "QUEUE_ABOVE_BYTES": 10}
    response = upload(api_as(people["mle"]), reverse("api:import-labelstudio", args=[news.pk]), "t.json",
                      json.dumps(good_tasks()))  # fmt: skip
    batch_id = response.data["id"]
    calls = []

    def lost_connection(*args, **kwargs):
        calls.append(1)
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(queued_import, "_run_job", lost_connection)
    monkeypatch.setattr(run_queued_import, "retry_backoff", False)
    result = run_queued_import.apply(args=[batch_id])
    assert result.failed() and len(calls) == 1 + run_queued_import.max_retries
    batch = ImportBatch.objects.get(pk=batch_id)
    assert batch.status == "failed" and "repeated database errors (OperationalError)" in batch.errors[0]["message"]
    assert not queued_import.folder_of(batch_id).exists() and not Item.objects.exists()
