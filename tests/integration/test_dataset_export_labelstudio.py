"""A real consumer of the Label Studio JSON export: Label Studio's own converter
(`label_studio_sdk.converter`, requirements-labelstudio.txt) turns it into CSV, and every labeler's
label (and, without labelers, the final label) comes out as Concord has it."""

import csv
import json
import os

import pytest

from annotation.models import AnnotationLabel
from annotation.services import dataset_export as service

from .dataset_export_data import build_project

pytestmark = pytest.mark.django_db
try:
    from label_studio_sdk import converter
except ImportError:  # skipped on a bare machine; CI (CI=true) must have it, as for the crowd data
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("pip install --no-deps -r requirements-labelstudio.txt", allow_module_level=True)


def convert(tmp_path, export):
    source = service.file_path(export)
    out = tmp_path / "ls-csv"
    c = converter.Converter(config=export.label_config, project_dir=str(tmp_path), download_resources=False)
    assert "CSV" in c._get_supported_formats()
    c.convert_to_csv(str(source), str(out), is_dir=False, sep=",")
    with open(out / "result.csv", encoding="utf-8") as f:
        return list(csv.DictReader(f)), json.loads(source.read_bytes())


def test_labelers_labels_survive_label_studio_conversion(tmp_path):
    project = build_project()
    export = service.create_export(project, "label_studio", {"include_labels": True, "consensus": "majority_vote"})
    rows, tasks = convert(tmp_path, export)
    names = {t["id"]: t["meta"]["labelers"] for t in tasks}
    got = sorted((int(r["id"]), names[int(r["id"])][r["annotator"]], r["label"]) for r in rows if r["label"])
    expected = sorted(
        (a.annotation.item_id, a.annotation.labeler.username, a.label_class.name)
        for a in AnnotationLabel.objects.filter(
            annotation__item__project=project, annotation__is_current=True
        ).select_related("annotation__labeler", "label_class")
    )
    assert got == expected and len(got) == 14
    # the item data came through as columns too
    assert {r["external_id"] for r in rows} == {t["data"]["external_id"] for t in tasks}
    text_of = {int(r["id"]): r["text"] for r in rows}
    assert all(text_of[t["id"]] == t["data"]["text"] for t in tasks)


def test_final_labels_survive_label_studio_conversion(tmp_path):
    project = build_project()
    export = service.create_export(project, "label_studio", {"consensus": "majority_vote", "only_final": True})
    rows, tasks = convert(tmp_path, export)
    final = {t["id"]: t["meta"]["final_label"] for t in tasks}
    assert {int(r["id"]): r["label"] for r in rows} == final
    assert len(final) == 7 and None not in final.values()
