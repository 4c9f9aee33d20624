"""The dataset-export writers (annotation/export_writers.py) on hand-built rows: exact output."""

import io
import json

import pyarrow.parquet as pq
import pytest

from annotation import export_writers as W

ROWS = [
    {
        "item_id": 1,
        "external_id": "a",
        "split": "train",
        "metadata": {"noise": "car"},
        "text": "good film",
        "image": None,
        "final_label": "pos",
        "final_label_source": "consensus",
        "consensus_method": "majority_vote",
        "confidence": 0.75,
        "ambiguous": False,
        "guideline_versions": [1, 2],
        "labels": [
            {
                "labeler": "ann",
                "labels": ["pos"],
                "unsure": False,
                "note": "",
                "guideline_version": 1,
                "created_at": "2026-11-30T10:00:00+00:00",
                "current": True,
            },
            {
                "labeler": "bob",
                "labels": ["neg"],
                "unsure": True,
                "note": 'hard, "maybe"',
                "guideline_version": 2,
                "created_at": "2026-11-30T11:00:00+00:00",
                "current": True,
            },
        ],
        "prediction": {"model": "m1", "label": "pos", "score": 0.9},
    },
    {
        "item_id": 2,
        "external_id": "b,c",
        "split": "dev",
        "metadata": {},
        "text": "line\nbreak",
        "image": None,
        "final_label": None,
        "final_label_source": None,
        "consensus_method": None,
        "confidence": None,
        "ambiguous": True,
        "guideline_versions": [],
        "labels": [],
        "prediction": None,
    },
]


def test_jsonl_exact():
    out = io.BytesIO()
    assert W.write_jsonl(iter(ROWS), out) == 2
    lines = out.getvalue().decode().split("\n")
    assert lines[2] == "" and len(lines) == 3
    assert lines[1] == (
        '{"ambiguous":true,"confidence":null,"consensus_method":null,"external_id":"b,c","final_label":null,'
        '"final_label_source":null,"guideline_versions":[],"image":null,"item_id":2,"labels":[],"metadata":{},'
        '"prediction":null,"split":"dev","text":"line\\nbreak"}'
    )
    assert json.loads(lines[0]) == ROWS[0]


def test_csv_exact():
    out = io.BytesIO()
    assert W.write_csv(iter(ROWS), out) == 2
    assert not out.closed  # the caller owns the file
    labels = json.dumps(ROWS[0]["labels"], separators=(",", ":"), sort_keys=True).replace('"', '""')
    expected = (
        ",".join(W.CSV_COLUMNS)
        + "\r\n"
        + '1,a,train,"{""noise"":""car""}",good film,,pos,consensus,majority_vote,0.75,false,1;2,'
        + f'"{labels}",m1,pos,0.9\r\n'
        + '2,"b,c",dev,{},"line\nbreak",,,,,,true,,,,,\r\n'
    )
    assert out.getvalue().decode("utf-8") == expected


def test_csv_of_no_rows_is_the_header():
    out = io.BytesIO()
    assert W.write_csv(iter([]), out) == 0
    assert out.getvalue() == (",".join(W.CSV_COLUMNS) + "\r\n").encode()


def test_label_studio_config_escapes_class_names():
    config = W.label_studio_config("text", ["pos", 'a "b" & <c>'])
    assert config == (
        "<View>\n"
        '  <Text name="text" value="$text"/>\n'
        '  <Choices name="label" toName="text" choice="single">\n'
        '    <Choice value="pos"/>\n'
        "    <Choice value='a \"b\" &amp; &lt;c&gt;'/>\n"
        "  </Choices>\n"
        "</View>\n"
    )
    assert 'choice="multiple"' in W.label_studio_config("image", ["x"], multi_label=True)
    with pytest.raises(ValueError):
        W.label_studio_config("audio", ["x"])


def test_label_studio_exact():
    out = io.BytesIO()
    assert W.write_label_studio(iter(ROWS), out, data_kind="text") == 2
    raw = out.getvalue().decode()
    assert raw.startswith("[{") and raw.endswith("}]\n") and raw.count(",\n") == 1
    tasks = json.loads(raw)

    def result(choices, rid):
        return [{"from_name": "label", "id": rid, "to_name": "text", "type": "choices", "value": {"choices": choices}}]

    assert tasks[0] == {
        "id": 1,
        "data": {"text": "good film", "external_id": "a", "split": "train", "metadata": {"noise": "car"}},
        "annotations": [
            {
                "completed_by": 1,
                "result": result(["pos"], "1-1"),
                "unsure": False,
                "note": "",
                "was_cancelled": False,
                "ground_truth": False,
                "created_at": "2026-11-30T10:00:00+00:00",
            },
            {
                "completed_by": 2,
                "result": result(["neg"], "1-2"),
                "unsure": True,
                "note": 'hard, "maybe"',
                "was_cancelled": False,
                "ground_truth": False,
                "created_at": "2026-11-30T11:00:00+00:00",
            },
        ],
        "predictions": [{"model_version": "m1", "score": 0.9, "result": result(["pos"], "1-p")}],
        "meta": {
            "final_label": "pos",
            "final_label_source": "consensus",
            "consensus_method": "majority_vote",
            "confidence": 0.75,
            "ambiguous": False,
            "guideline_versions": [1, 2],
            "labelers": {"1": "ann", "2": "bob"},
        },
    }
    assert tasks[1]["annotations"] == [] and "predictions" not in tasks[1]


def test_label_studio_without_labels_gives_the_final_label_as_ground_truth():
    row = {k: v for k, v in ROWS[0].items() if k != "labels"}
    task = W.label_studio_task(row, "image", {})
    assert task["data"]["image"] == ""
    assert W.label_studio_task({**row, "image": "items/x.png"}, "image", {})["data"]["image"] == "items/x.png"
    with_url = {**row, "image": "items/x.png", "image_url": "/items/1/image/"}
    assert W.label_studio_task(with_url, "image", {})["data"]["image"] == "/items/1/image/"
    assert task["annotations"] == [
        {
            "result": [
                {
                    "id": "1-final",
                    "from_name": "label",
                    "to_name": "image",
                    "type": "choices",
                    "value": {"choices": ["pos"]},
                }
            ],
            "was_cancelled": False,
            "ground_truth": True,
        }
    ]


def test_label_studio_numbers_labelers_across_tasks_and_skips_history():
    ids = {}
    later = {
        **ROWS[0],
        "item_id": 3,
        "labels": [dict(ROWS[0]["labels"][1]), {**ROWS[0]["labels"][0], "current": False}],
    }
    W.label_studio_task(ROWS[0], "text", ids)
    task = W.label_studio_task(later, "text", ids)
    assert [a["completed_by"] for a in task["annotations"]] == [2]
    assert task["meta"]["labelers"] == {"2": "bob"}


def test_label_studio_of_no_rows_is_an_empty_array():
    out = io.BytesIO()
    assert W.write_label_studio(iter([]), out, data_kind="text") == 0
    assert json.loads(out.getvalue()) == []


@pytest.mark.parametrize("batch_rows", [1, 2, 1000])
def test_parquet_round_trip(batch_rows):
    out = io.BytesIO()
    assert W.write_parquet(iter(ROWS), out, batch_rows=batch_rows) == 2
    table = pq.read_table(io.BytesIO(out.getvalue()))
    assert table.schema == W.parquet_schema()
    got = table.to_pylist()
    assert got[0]["metadata"] == '{"noise":"car"}'
    assert got[0]["labels"] == ROWS[0]["labels"]
    assert got[0]["prediction"] == {"model": "m1", "label": "pos", "score": 0.9}
    assert got[0]["guideline_versions"] == [1, 2]
    assert got[1] == {
        **ROWS[1],
        "metadata": "{}",
        "labels": [],
    }
    assert pq.ParquetFile(io.BytesIO(out.getvalue())).num_row_groups == (2 if batch_rows == 1 else 1)


def test_parquet_without_labels_has_null_labels():
    out = io.BytesIO()
    rows = [{k: v for k, v in ROWS[1].items() if k not in ("labels", "prediction")}]
    W.write_parquet(iter(rows), out)
    got = pq.read_table(io.BytesIO(out.getvalue())).to_pylist()
    assert got[0]["labels"] is None and got[0]["prediction"] is None


def test_parquet_of_no_rows_has_the_schema():
    out = io.BytesIO()
    assert W.write_parquet(iter([]), out) == 0
    table = pq.read_table(io.BytesIO(out.getvalue()))
    assert table.num_rows == 0 and table.schema == W.parquet_schema()


def test_writers_stream():
    """A writer consumes its rows lazily: the file grows while the iterator is still running."""
    out = io.BytesIO()
    seen = []

    def rows():
        for i in range(3):
            seen.append(len(out.getvalue()))
            yield {**ROWS[1], "item_id": i}

    W.write_jsonl(rows(), out)
    assert seen[0] == 0 and seen[1] > 0 and seen[2] > seen[1]


def test_unknown_format():
    with pytest.raises(ValueError, match="unknown format 'xml'"):
        W.write("xml", iter([]), io.BytesIO())
