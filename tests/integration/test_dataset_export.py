"""Dataset export (annotation/services/dataset_export.py, its API, CLI and task) on a hand-built
project (tests/integration/dataset_export_data.py) against the real database."""

import csv
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotation import export_writers as W
from annotation.models import Item
from annotation.services import dataset_export as service
from training.services import build_snapshot

from .dataset_export_data import build_project

pytestmark = pytest.mark.django_db

MV = {"consensus": "majority_vote"}


@pytest.fixture
def films(db):
    return build_project()


def rows_of(project, **options):
    return {r["external_id"]: r for r in service.ExportRows(project, service.check_options(project, {**MV, **options}))}


def test_final_label_and_source_of_each_item(films):
    rows = rows_of(films)
    got = {
        k: (r["final_label"], r["final_label_source"], r["ambiguous"], r["guideline_versions"], r["split"])
        for k, r in rows.items()
        if k != "low"
    }
    assert got == {
        "g1": ("pos", "gold", False, [1], "train"),
        "r1": ("neg", "resolution", False, [1, 2], "train"),
        "c1": ("pos", "consensus", False, [2], "dev"),
        "n1": (None, None, False, [], "test"),
        "a1": ("unclear", "resolution", True, [1], "train"),  # an SME's "ambiguous"
        "u1": ("unclear", "consensus", True, [2], "dev"),
        "h1": ("neg", "consensus", False, [2], "train"),
    }
    assert rows["c1"]["confidence"] == pytest.approx(2 / 3, abs=1e-6)
    assert rows["c1"]["consensus_method"] == "majority_vote"
    assert rows["g1"]["confidence"] is None and rows["g1"]["consensus_method"] is None
    assert rows["low"]["confidence"] == 0.5 and rows["low"]["final_label"] in ("pos", "neg")
    assert rows["g1"]["metadata"] == {"noise": "car"} and rows["g1"]["text"] == "text of g1"
    assert "labels" not in rows["g1"] and "prediction" not in rows["g1"]


def test_final_labels_agree_with_the_training_snapshot(films):
    """The export reuses the snapshot's precedence: every item the snapshot keeps has the same label."""
    snap = build_snapshot(films, policy={"consensus": "majority_vote", "min_confidence": 0.0, "keep_ambiguity": True})
    trained = dict(snap.labels.values_list("item__external_id", "label_class__name"))
    rows = rows_of(films)
    assert trained  # something to compare
    for external_id, name in trained.items():
        assert rows[external_id]["final_label"] == name, external_id
    kept = {k for k, r in rows.items() if r["final_label"] is not None}
    assert kept == set(trained)


def test_dawid_skene_is_the_default_method(films):
    rows = {r["external_id"]: r for r in service.ExportRows(films, service.check_options(films, {}))}
    assert rows["c1"]["consensus_method"] == "dawid_skene"
    assert 0 < rows["c1"]["confidence"] <= 1 and rows["c1"]["final_label"] == "pos"


def test_labels_current_and_history(films):
    rows = rows_of(films, include_labels=True)
    assert rows["r1"]["labels"] == [
        {
            "labeler": "films-ann",
            "labels": ["pos"],
            "unsure": False,
            "note": "",
            "guideline_version": 1,
            "created_at": rows["r1"]["labels"][0]["created_at"],
            "current": True,
        },
        {
            "labeler": "films-bob",
            "labels": ["neg"],
            "unsure": True,
            "note": "not sure",
            "guideline_version": 2,
            "created_at": rows["r1"]["labels"][1]["created_at"],
            "current": True,
        },
    ]
    assert [(e["labels"], e["current"]) for e in rows["h1"]["labels"]] == [(["neg"], True)]
    history = rows_of(films, include_history=True)
    assert [(e["labels"], e["current"]) for e in history["h1"]["labels"]] == [(["pos"], False), (["neg"], True)]
    assert history["h1"]["guideline_versions"] == [2]  # of the current labels only


def test_pseudonyms_stable_within_an_export_and_different_across(films):
    first = rows_of(films, include_labels=True, pseudonymize=True)
    second = rows_of(films, include_labels=True, pseudonymize=True)
    names1 = {e["labeler"] for r in first.values() for e in r.get("labels", [])}
    assert len(names1) == 3 and all(n.startswith("labeler-") for n in names1)
    # ann labelled g1 and r1 first: the same pseudonym on both items
    assert first["g1"]["labels"][0]["labeler"] == first["r1"]["labels"][0]["labeler"]
    assert first["g1"]["labels"][0]["labeler"] != first["g1"]["labels"][1]["labeler"]
    names2 = {e["labeler"] for r in second.values() for e in r.get("labels", [])}
    assert len(names2) == 3 and not names1 & names2
    out = io.BytesIO()
    service.write_export(
        films, "jsonl", service.check_options(films, {"include_labels": True, "pseudonymize": True}), out
    )
    assert b"films-ann" not in out.getvalue() and b"labeler-" in out.getvalue()


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"split": ["dev"]}, {"c1", "u1"}),
        ({"split": ["train", "test"]}, {"g1", "r1", "n1", "a1", "h1", "low"}),
        ({"source": ["gold"]}, {"g1"}),
        ({"source": ["resolution"]}, {"r1", "a1"}),
        ({"source": ["none"]}, {"n1"}),
        ({"source": ["consensus"], "min_confidence": 0.6}, {"c1", "u1", "h1"}),
        ({"min_confidence": 0.9}, {"g1", "r1", "n1", "a1", "u1", "h1"}),
        ({"slice": ["noise=car"]}, {"g1", "r1", "u1"}),
        ({"slice": ["noise=car"], "split": ["dev"]}, {"u1"}),
        ({"slice": ["in=car"]}, set()),  # a key named like a lookup is still a key
        ({"slice": ["contains=x", "noise=car"]}, set()),
        ({"label_class": ["neg"]}, {"r1", "h1"}),
        ({"label_class": ["unclear"]}, {"u1", "a1"}),
        ({"only_final": True}, {"g1", "r1", "c1", "a1", "u1", "h1", "low"}),
    ],
)
def test_filters(films, options, expected):
    got = set(rows_of(films, **options))
    if "label_class" in options and options["label_class"] == ["neg"]:
        got.discard("low")  # a 1:1 tie: its label is drawn, either class
    assert got == expected


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"colour": "red"}, "colour"),
        ({"split": ["validation"]}, "split"),
        ({"source": ["model"]}, "source"),
        ({"min_confidence": 2}, "min_confidence"),
        ({"slice": ["noise"]}, "slice"),
        ({"slice": ["no ise=car"]}, "slice"),
        ({"label_class": ["cat"]}, "label_class"),
        ({"consensus": "mode"}, "consensus"),
        ({"include_labels": "yes"}, "include_labels"),
    ],
)
def test_bad_options_are_refused_naming_them(films, options, field):
    with pytest.raises(service.ExportError) as exc:
        service.check_options(films, options)
    assert exc.value.field == field


def test_queries_per_chunk_are_bounded(films):
    options = service.check_options(films, {**MV, "include_labels": True})
    small = service.ExportRows(films, options, chunk_items=2)
    with CaptureQueriesContext(connection) as ctx:
        n = sum(1 for _ in small)
    assert n == len(Item.objects.filter(project=films))
    # 4 chunks of 2 items + the empty one that ends: at most 3 queries per full chunk
    assert len(ctx.captured_queries) <= 4 * 3 + 1


def test_each_format_from_the_service(films):
    options = service.check_options(films, {**MV, "include_labels": True})
    for fmt in W.FORMATS:
        out = io.BytesIO()
        assert service.write_export(films, fmt, options, out) == 8, fmt
    out = io.BytesIO()
    service.write_export(films, "csv", options, out)
    table = list(csv.DictReader(io.StringIO(out.getvalue().decode())))
    assert {r["external_id"]: r["final_label_source"] for r in table}["g1"] == "gold"
    out = io.BytesIO()
    service.write_export(films, "parquet", options, out)
    got = {r["external_id"]: r for r in pq.read_table(io.BytesIO(out.getvalue())).to_pylist()}
    assert got["r1"]["final_label"] == "neg" and len(got["r1"]["labels"]) == 2


# ---------------------------------------------------------------------------------------------
# Predictions of the promoted model
# ---------------------------------------------------------------------------------------------


def test_predictions_of_the_promoted_model(films, monkeypatch):
    from training.models import DatasetSnapshot, ModelVersion

    snap = DatasetSnapshot.objects.create(
        project=films,
        policy={},
        content_hash="x" * 64,
        classes=[{"id": 0, "name": "pos"}, {"id": 1, "name": "neg"}],
        counts={},
        sources={},
        size=0,
    )
    version = ModelVersion.objects.create(
        project=films, snapshot=snap, trainer="sklearn_logreg", status="ready", artifact="x", is_promoted=True
    )
    g1 = Item.objects.get(project=films, external_id="g1").pk
    import training.services as ts

    monkeypatch.setattr(ts, "out_of_sample", lambda v: (np.array([g1]), np.array([[0.2, 0.8]])))
    rows = rows_of(films, include_predictions=True)
    assert rows["g1"]["prediction"] == {"model": version.short_id, "label": "neg", "score": 0.8}
    assert rows["r1"]["prediction"] is None
    out = io.BytesIO()
    service.write_export(films, "label_studio", service.check_options(films, {"include_predictions": True}), out)
    tasks = {t["data"]["external_id"]: t for t in json.loads(out.getvalue())}
    assert tasks["g1"]["predictions"][0]["result"][0]["value"] == {"choices": ["neg"]}
    assert "predictions" not in tasks["r1"]


def test_no_promoted_model_no_predictions(films):
    rows = rows_of(films, include_predictions=True)
    assert all(r["prediction"] is None for r in rows.values())


# ---------------------------------------------------------------------------------------------
# Stored exports: atomic files, a failure midway, a re-run
# ---------------------------------------------------------------------------------------------


def export_folder(project):
    return Path(settings.MEDIA_ROOT) / "exports" / str(project.pk)


def test_inline_export_records_file_and_sha(films):
    export = service.create_export(films, "jsonl", MV)
    assert export.status == "done" and export.rows == 8 and export.progress == 1.0
    path = service.file_path(export)
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == export.sha256 and export.size_bytes == len(data)
    assert len(data.splitlines()) == 8
    assert sorted(p.name for p in export_folder(films).iterdir()) == [f"{export.pk}.jsonl"]


def test_label_studio_export_keeps_its_labeling_config(films):
    export = service.create_export(films, "label_studio", {})
    assert '<Choice value="unclear"/>' in export.label_config


def test_failure_midway_leaves_no_file_and_a_rerun_completes(films, monkeypatch):
    export = service.create_export(films, "jsonl", MV, run_inline=False)
    real = W.write_jsonl

    def breaks_midway(rows, out):
        for i, row in enumerate(rows):
            out.write(json.dumps(row).encode() + b"\n")
            if i == 3:
                raise OSError("disk full")

    monkeypatch.setattr(W, "write_jsonl", breaks_midway)
    with pytest.raises(OSError):
        service.run_export(export.pk)
    export.refresh_from_db()
    assert export.status == "failed" and "disk full" in export.error and not export.file
    assert list(export_folder(films).iterdir()) == []

    monkeypatch.setattr(W, "write_jsonl", real)
    assert service.run_export(export.pk) == "done"
    export.refresh_from_db()
    assert export.status == "done" and export.rows == 8 and not export.error
    assert [p.name for p in export_folder(films).iterdir()] == [f"{export.pk}.jsonl"]
    assert service.run_export(export.pk) == "done"  # a second delivery leaves it alone


def test_the_celery_task_runs_the_export(films):
    from annotation.tasks import run_dataset_export

    export = service.create_export(films, "csv", MV, run_inline=False)
    assert export.status == "queued"
    assert run_dataset_export.apply(args=[export.pk]).get() == "done"
    export.refresh_from_db()
    assert export.rows == 8 and service.file_path(export).exists()


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def test_cli_writes_the_file(films, tmp_path):
    out = tmp_path / "films.jsonl"
    stdout = io.StringIO()
    call_command("export_labels", "films", "--format", "jsonl", "--out", str(out), "--split", "dev", stdout=stdout)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["external_id"] for r in rows) == ["c1", "u1"]
    assert hashlib.sha256(out.read_bytes()).hexdigest() in stdout.getvalue()
    assert [p.name for p in tmp_path.iterdir()] == ["films.jsonl"]


def test_cli_refuses_bad_input(films, tmp_path):
    with pytest.raises(CommandError, match="label_class"):
        call_command("export_labels", "films", "--format", "csv", "--out", str(tmp_path / "x"), "--class", "cat")
    with pytest.raises(CommandError, match="no project"):
        call_command("export_labels", "nope", "--format", "csv", "--out", str(tmp_path / "x"))
    assert list(tmp_path.iterdir()) == []


def test_image_rows_carry_concord_urls_of_their_images(project):
    """An image project's rows (and Label Studio tasks) point at Concord's item-file URL."""
    from django.core.files.base import ContentFile

    item = Item.objects.create(project=project, external_id="i1", split="train")
    item.image.save("i1.png", ContentFile(b"\x89PNG fake"), save=True)
    Item.objects.create(project=project, external_id="i2", split="train")
    rows = {r["external_id"]: r for r in service.ExportRows(project, service.check_options(project, {}))}
    assert rows["i1"]["image_url"] == f"/items/{item.pk}/image/" and rows["i1"]["image"].startswith("items/")
    assert rows["i2"]["image_url"] is None and rows["i2"]["text"] is None
    out = io.BytesIO()
    service.write_export(project, "label_studio", service.check_options(project, {}), out)
    tasks = {t["data"]["external_id"]: t for t in json.loads(out.getvalue())}
    assert tasks["i1"]["data"]["image"] == f"/items/{item.pk}/image/"
