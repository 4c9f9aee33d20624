"""The pure Label Studio / Concord JSONL parser: exact tasks for hand-written files, no database."""

import json

import pytest

from annotation.crowd_parse import ParseError
from annotation.labelstudio_parse import Label, Prediction, image_names, parse_concord_jsonl, parse_labelstudio


def ls(tasks, kind="text", multi=False):
    return parse_labelstudio(json.dumps(tasks).encode(), data_kind=kind, multi_label=multi)


def test_a_label_studio_task_becomes_labels_gold_and_predictions():
    tasks, errors = ls(
        {
            "id": 4,
            "data": {"review": "fine", "lang": "en"},
            "annotations": [
                {"completed_by": {"email": "a@x.org"}, "result": [
                    {"type": "textarea", "value": {"text": ["ignored"]}},
                    {"type": "choices", "value": {"choices": ["pos"]}}]},
                {"completed_by": 12, "was_cancelled": True, "result": []},
                {"ground_truth": True, "result": [{"type": "choices", "value": {"choices": ["pos"]}}]},
            ],
            "predictions": [{"model_version": "v2", "score": 0.4, "result": [
                {"type": "choices", "value": {"choices": ["neg"]}, "score": 0.9}]}],
        }
    )  # fmt: skip
    assert errors == []
    (task,) = tasks
    assert (task.row, task.external_id, task.text, task.text_field, task.metadata) == (
        1, "4", "fine", "data.review", {"lang": "en"},
    )  # fmt: skip
    assert task.labels == [Label("a@x.org", ("pos",), "annotations[0].result[1].value.choices")]
    assert (task.gold, task.gold_field) == (("pos",), "annotations[2].result[0].value.choices")
    assert task.predictions == [Prediction("v2", "neg", 0.9, "predictions[0].result[0].value.choices")]


def test_multi_label_keeps_several_choices_and_single_label_refuses_them():
    task = {"id": 1, "data": {"text": "t"}, "annotations": [
        {"completed_by": "a", "result": [{"type": "choices", "value": {"choices": ["x", "y", "x"]}}]}]}  # fmt: skip
    tasks, errors = ls([task], multi=True)
    assert tasks[0].labels[0].names == ("x", "y") and errors == []
    tasks, errors = ls([task])
    assert tasks == [] and errors == [
        {"row": 1, "field": "annotations[0].result[0].value.choices",
         "message": "holds 2 classes ('x', 'y'); this project is single-label"}
    ]  # fmt: skip


def test_an_image_task_is_named_by_its_file_when_it_has_no_id():
    tasks, errors = ls([{"data": {"image": "/data/upload/2/0a1b2c3d-cat%201.png"}}], kind="image")
    assert errors == [] and tasks[0].external_id == "cat 1.png"
    assert image_names("/data/upload/2/0a1b2c3d-cat%201.png") == [
        "data/upload/2/0a1b2c3d-cat 1.png", "0a1b2c3d-cat 1.png", "cat 1.png",
    ]  # fmt: skip
    assert image_names("https://host.example/a/b.jpg?sig=1") == ["a/b.jpg", "b.jpg"]


@pytest.mark.parametrize(
    "content, message",
    [(b"", "is empty"), (b"[]", "holds no tasks"), (b"[1,", "is not valid JSON"), (b"3", "must hold a JSON array")],
)
def test_unreadable_label_studio_files(content, message):
    with pytest.raises(ParseError, match=message):
        parse_labelstudio(content, data_kind="text", multi_label=False)


def test_concord_jsonl_rows_are_line_numbers_and_gold_comes_only_from_gold():
    lines = [
        {"external_id": "a", "final_label": "x", "final_label_source": "consensus",
         "labels": [{"labeler": "w", "label": "x", "unsure": True, "note": "n"}]},
        {"external_id": 7, "final_label": {"label": "y", "source": "gold"}, "split": "dev"},
        {"external_id": "b", "split": "later"},
    ]  # fmt: skip
    data = (
        b"\n".join(json.dumps(line).encode() for line in lines[:1])
        + b"\n\n"
        + b"\n".join(json.dumps(line).encode() for line in lines[1:])
    )
    tasks, errors = parse_concord_jsonl(data, multi_label=False)
    assert [(t.row, t.external_id, t.gold, t.split) for t in tasks] == [(1, "a", None, None), (3, "7", ("y",), "dev")]
    assert tasks[0].labels == [Label("w", ("x",), "labels[0].label", True, "n")]
    assert errors == [
        {"row": 4, "field": "metadata.split", "message": "split must be one of train, dev, test, not 'later'"}
    ]


# --- Concord's own export shapes (annotation/export_writers.py) ---------------------------------


def concord_ls_task(**meta):
    return {
        "id": 17,
        "data": {"text": "fine", "external_id": "t1", "split": "dev", "metadata": {"noise": "car", "n": 2}},
        "annotations": [
            {"completed_by": 1, "was_cancelled": False, "ground_truth": False, "created_at": "2026-12-01T00:00:00Z",
             "result": [{"id": "17-1", "from_name": "label", "to_name": "text", "type": "choices",
                         "value": {"choices": ["pos"]}}]},
            {"completed_by": 2, "was_cancelled": False, "ground_truth": False, "unsure": True, "note": "hm",
             "result": [{"id": "17-2", "from_name": "label", "to_name": "text", "type": "choices",
                         "value": {"choices": ["neg"]}}]},
        ],
        "meta": {"final_label": "pos", "final_label_source": "gold",
                 "labelers": {"1": "ann", "2": "labeler-0a1b2c3d4e5f"}, **meta},
    }  # fmt: skip


def test_concord_label_studio_export_names_labelers_from_meta_and_reads_gold_and_slices():
    tasks, errors = ls([concord_ls_task()])
    assert errors == []
    (task,) = tasks
    assert (task.external_id, task.split, task.metadata, task.text) == ("t1", "dev", {"noise": "car", "n": 2}, "fine")
    assert task.labels == [
        Label("ann", ("pos",), "annotations[0].result[0].value.choices"),
        Label("labeler-0a1b2c3d4e5f", ("neg",), "annotations[1].result[0].value.choices", True, "hm"),
    ]
    assert (task.gold, task.gold_field) == (("pos",), "meta.final_label")


@pytest.mark.parametrize("source", ["consensus", "resolution", None])
def test_a_derived_final_label_in_meta_is_not_gold(source):
    tasks, errors = ls([concord_ls_task(final_label_source=source, confidence=0.9)])
    assert errors == [] and tasks[0].gold is None


def test_meta_gold_must_agree_with_a_ground_truth_annotation_and_bad_meta_names_are_refused():
    task = concord_ls_task(final_label="neg")
    task["annotations"].append({"ground_truth": True, "result": [{"type": "choices", "value": {"choices": ["pos"]}}]})
    tasks, errors = ls([task])
    assert tasks == [] and errors[0]["row"] == 1 and errors[0]["field"] == "meta.final_label"
    tasks, errors = ls([concord_ls_task(labelers={"1": "", "2": "b"})])
    assert tasks == [] and errors == [
        {"row": 1, "field": "meta.labelers.1", "message": "a labeler's name must be a non-empty string"}
    ]
    # A number with no name in meta stays the number, as Label Studio's own exports have it.
    tasks, errors = ls([concord_ls_task(labelers={"2": "b"})])
    assert errors == [] and [lab.labeler for lab in tasks[0].labels] == ["1", "b"]


def test_concord_label_studio_export_metadata_must_be_scalars():
    task = concord_ls_task()
    task["data"]["metadata"] = {"noise": ["car"]}
    tasks, errors = ls([task])
    assert tasks == [] and errors == [
        {"row": 1, "field": "data.metadata.noise", "message": "metadata values must be text, numbers or booleans"}
    ]


def test_concord_jsonl_export_labels_lists_skip_history_and_gold_source():
    line = {
        "item_id": 3, "external_id": "a", "split": "train", "metadata": {"noise": "car"}, "text": "t",
        "final_label": "x", "final_label_source": "gold", "consensus_method": None, "confidence": None,
        "ambiguous": False, "guideline_versions": [1],
        "labels": [
            {"labeler": "w", "labels": ["y"], "unsure": False, "note": "", "guideline_version": 1,
             "created_at": "2026-12-01T00:00:00+00:00", "current": False},
            {"labeler": "w", "labels": ["x"], "unsure": True, "note": "n", "guideline_version": 1,
             "created_at": "2026-12-01T01:00:00+00:00", "current": True},
            {"labeler": "v", "label": "y"},
        ],
    }  # fmt: skip
    tasks, errors = parse_concord_jsonl(json.dumps(line).encode(), multi_label=False)
    assert errors == []
    (task,) = tasks
    assert task.labels == [Label("w", ("x",), "labels[1].labels", True, "n"), Label("v", ("y",), "labels[2].label")]
    assert (task.gold, task.metadata, task.split) == (("x",), {"noise": "car"}, "train")
    line["labels"] = [{"labeler": "w", "labels": [], "current": True}]
    tasks, errors = parse_concord_jsonl(json.dumps(line).encode(), multi_label=False)
    assert tasks == [] and errors == [
        {"row": 1, "field": "labels[0].labels", "message": "must be a non-empty list of class names"}
    ]
