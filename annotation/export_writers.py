"""Writers of a labelled-dataset export: JSONL, CSV, Label Studio JSON and Parquet. No Django.

Every writer takes an iterable of *rows* (one dict per item, the shape below) and a binary file
opened for writing, and streams: it holds one row (Parquet: one batch of rows) at a time, never
the whole output, so an export's memory does not grow with the project. Each returns the number
of rows written. A row:

    {
      "item_id": 17, "external_id": "img-001", "split": "train",
      "metadata": {"noise": "car"},           # the item's slices
      "text": "..." or None, "image": "items/img-001.png" or None,   # the stored file's path
      "image_url": "/items/17/image/" or None,  # image projects only: Concord's URL of the image
      "final_label": "crow" or None,
      "final_label_source": "gold" | "resolution" | "consensus" | None,
      "consensus_method": "dawid_skene" | "majority_vote" | None,   # set when the source is consensus
      "confidence": 0.93 or None,              # the consensus confidence, when the source is consensus
      "ambiguous": False,
      "guideline_versions": [1, 2],            # versions the item's current labels were made under
      "labels": [                              # only when the export asks for labelers' labels
        {"labeler": "alice" (or a pseudonym), "labels": ["crow"], "unsure": False, "note": "",
         "guideline_version": 2 or None, "created_at": "2026-11-30T10:00:00+00:00", "current": True},
      ],
      "prediction": {"model": "ab12cd34", "label": "crow", "score": 0.81} or None,  # when asked
    }

Keys the export did not ask for ("labels", "prediction") may be missing; writers treat a missing
key as empty.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from xml.sax.saxutils import quoteattr

__all__ = [
    "CSV_COLUMNS",
    "FORMATS",
    "PARQUET_BATCH_ROWS",
    "label_studio_config",
    "label_studio_task",
    "write",
    "write_csv",
    "write_jsonl",
    "write_label_studio",
    "write_parquet",
]

FORMATS = ("jsonl", "csv", "label_studio", "parquet")
EXTENSIONS = {"jsonl": "jsonl", "csv": "csv", "label_studio": "json", "parquet": "parquet"}
# The Label Studio labeling config's tag names: the `from_name` / `to_name` of every result.
LS_CHOICES = "label"
LS_OBJECT = {"text": "text", "image": "image"}

CSV_COLUMNS = (
    "item_id",
    "external_id",
    "split",
    "metadata",
    "text",
    "image",
    "final_label",
    "final_label_source",
    "consensus_method",
    "confidence",
    "ambiguous",
    "guideline_versions",
    "labels",
    "prediction_model",
    "prediction_label",
    "prediction_score",
)
PARQUET_BATCH_ROWS = 2_000


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def write_jsonl(rows: Iterable[dict], out) -> int:
    """One JSON object per line (UTF-8, keys sorted, no spaces), each row as it is."""
    n = 0
    for row in rows:
        out.write(_json(row).encode("utf-8"))
        out.write(b"\n")
        n += 1
    return n


def _csv_record(row: dict) -> list:
    prediction = row.get("prediction") or {}
    ambiguous = row.get("ambiguous")
    return [
        row["item_id"],
        row["external_id"],
        row["split"],
        _json(row.get("metadata") or {}),
        row.get("text") or "",
        row.get("image") or "",
        row.get("final_label") or "",
        row.get("final_label_source") or "",
        row.get("consensus_method") or "",
        "" if row.get("confidence") is None else repr(float(row["confidence"])),
        "true" if ambiguous else "false",
        ";".join(str(v) for v in row.get("guideline_versions") or []),
        _json(row["labels"]) if row.get("labels") else "",
        prediction.get("model", ""),
        prediction.get("label", ""),
        "" if prediction.get("score") is None else repr(float(prediction["score"])),
    ]


def write_csv(rows: Iterable[dict], out) -> int:
    """RFC 4180 CSV (UTF-8, CRLF line ends, a header row of :data:`CSV_COLUMNS`).

    Nested values are JSON in their cell: ``metadata`` and ``labels`` (the labelers' labels, when
    exported); ``guideline_versions`` is ``1;2``; empty cells stand for "none".
    """
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
    try:
        writer = csv.writer(text, lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        n = 0
        for row in rows:
            writer.writerow(_csv_record(row))
            n += 1
        text.flush()
    finally:
        text.detach()  # leave `out` open: the caller owns it
    return n


def label_studio_config(data_kind: str, classes: list[str], multi_label: bool = False) -> str:
    """The Label Studio labeling config (XML) the exported tasks' results refer to: one object tag
    (``<Text name="text" value="$text"/>`` or ``<Image name="image" value="$image"/>``) and one
    ``<Choices name="label">`` holding every class."""
    if data_kind not in LS_OBJECT:
        raise ValueError(f"data_kind must be one of {', '.join(LS_OBJECT)}")
    obj = LS_OBJECT[data_kind]
    tag = "Text" if data_kind == "text" else "Image"
    choice = "multiple" if multi_label else "single"
    lines = [
        "<View>",
        f'  <{tag} name="{obj}" value="${obj}"/>',
        f'  <Choices name="{LS_CHOICES}" toName="{obj}" choice="{choice}">',
        *(f"    <Choice value={quoteattr(name)}/>" for name in classes),
        "  </Choices>",
        "</View>",
    ]
    return "\n".join(lines) + "\n"


def _result(obj: str, choices: list[str], result_id: str) -> list[dict]:
    return [
        {
            "id": result_id,
            "from_name": LS_CHOICES,
            "to_name": obj,
            "type": "choices",
            "value": {"choices": list(choices)},
        }
    ]


def label_studio_task(row: dict, data_kind: str, labeler_ids: dict) -> dict:
    """A row as a Label Studio task.

    ``data`` holds the item (``text`` or ``image``) with its external id, split and metadata.
    ``annotations`` holds one annotation per labeler's *current* label when the row has labels
    (``completed_by`` is the labeler's number in this export, ``labeler_ids`` maps names to
    numbers and grows as new names appear); otherwise one ``ground_truth`` annotation with the
    final label, if there is one. ``predictions`` holds the model's label where it scored the
    item. ``meta`` keeps Concord's provenance: final label, its source, confidence, ambiguity,
    guideline versions and the labelers' names by number.
    """
    obj = LS_OBJECT[data_kind]
    item_id = row["item_id"]
    data = {
        obj: (row.get("image_url") or row.get("image") or "") if obj == "image" else (row.get(obj) or ""),
        "external_id": row["external_id"],
        "split": row["split"],
        "metadata": row.get("metadata") or {},
    }
    annotations = []
    labelers = {}
    if "labels" in row:
        for n, entry in enumerate(e for e in row["labels"] or [] if e.get("current", True)):
            number = labeler_ids.setdefault(entry["labeler"], len(labeler_ids) + 1)
            labelers[str(number)] = entry["labeler"]
            annotations.append(
                {
                    "completed_by": number,
                    "result": _result(obj, entry["labels"], f"{item_id}-{n + 1}"),
                    # Concord's own keys (Label Studio keeps unknown annotation keys): a re-import
                    # keeps the labeler's unsure flag and note.
                    "unsure": bool(entry.get("unsure", False)),
                    "note": entry.get("note") or "",
                    "was_cancelled": False,
                    "ground_truth": False,
                    "created_at": entry.get("created_at"),
                }
            )
    elif row.get("final_label"):
        annotations.append(
            {
                "result": _result(obj, [row["final_label"]], f"{item_id}-final"),
                "was_cancelled": False,
                "ground_truth": True,
            }
        )
    task = {"id": item_id, "data": data, "annotations": annotations}
    prediction = row.get("prediction")
    if prediction:
        task["predictions"] = [
            {
                "model_version": prediction["model"],
                "score": prediction["score"],
                "result": _result(obj, [prediction["label"]], f"{item_id}-p"),
            }
        ]
    task["meta"] = {
        "final_label": row.get("final_label"),
        "final_label_source": row.get("final_label_source"),
        "consensus_method": row.get("consensus_method"),
        "confidence": row.get("confidence"),
        "ambiguous": bool(row.get("ambiguous")),
        "guideline_versions": list(row.get("guideline_versions") or []),
        "labelers": labelers,
    }
    return task


def write_label_studio(rows: Iterable[dict], out, *, data_kind: str) -> int:
    """A Label Studio JSON export: one JSON array of tasks (see :func:`label_studio_task`),
    written as it goes: ``[``, the tasks separated by ``,\\n``, ``]``."""
    if data_kind not in LS_OBJECT:
        raise ValueError(f"data_kind must be one of {', '.join(LS_OBJECT)}")
    labeler_ids: dict = {}
    out.write(b"[")
    n = 0
    for row in rows:
        if n:
            out.write(b",\n")
        out.write(_json(label_studio_task(row, data_kind, labeler_ids)).encode("utf-8"))
        n += 1
    out.write(b"]\n")
    return n


def parquet_schema():
    import pyarrow as pa

    label = pa.struct(
        [
            ("labeler", pa.string()),
            ("labels", pa.list_(pa.string())),
            ("unsure", pa.bool_()),
            ("note", pa.string()),
            ("guideline_version", pa.int32()),
            ("created_at", pa.string()),
            ("current", pa.bool_()),
        ]
    )
    prediction = pa.struct([("model", pa.string()), ("label", pa.string()), ("score", pa.float64())])
    return pa.schema(
        [
            ("item_id", pa.int64()),
            ("external_id", pa.string()),
            ("split", pa.string()),
            ("metadata", pa.string()),  # JSON: slices differ from item to item
            ("text", pa.string()),
            ("image", pa.string()),
            ("final_label", pa.string()),
            ("final_label_source", pa.string()),
            ("consensus_method", pa.string()),
            ("confidence", pa.float64()),
            ("ambiguous", pa.bool_()),
            ("guideline_versions", pa.list_(pa.int32())),
            ("labels", pa.list_(label)),
            ("prediction", prediction),
        ]
    )


_LABEL_KEYS = ("labeler", "labels", "unsure", "note", "guideline_version", "created_at", "current")


def _parquet_batch(rows: list[dict], schema):
    import pyarrow as pa

    columns = {name: [] for name in schema.names}
    for row in rows:
        for name in schema.names:
            value = row.get(name)
            if name == "metadata":
                value = _json(value or {})
            elif name == "guideline_versions":
                value = list(value or [])
            elif name == "labels":
                value = None if value is None else [{k: e.get(k) for k in _LABEL_KEYS} for e in value]
            elif name == "ambiguous":
                value = bool(value)
            columns[name].append(value)
    return pa.RecordBatch.from_pydict(columns, schema=schema)


def write_parquet(rows: Iterable[dict], out, *, batch_rows: int = PARQUET_BATCH_ROWS) -> int:
    """Apache Parquet (pyarrow), one row group per ``batch_rows`` rows, columns as in
    :func:`parquet_schema`: ``metadata`` is a JSON string, ``labels`` a list of structs (null when
    the export did not ask for labels), ``prediction`` a struct or null."""
    import pyarrow.parquet as pq

    schema = parquet_schema()
    n = 0
    with pq.ParquetWriter(out, schema, compression="zstd") as writer:
        batch: list[dict] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= batch_rows:
                writer.write_batch(_parquet_batch(batch, schema))
                n += len(batch)
                batch = []
        if batch or n == 0:
            writer.write_batch(_parquet_batch(batch, schema))
            n += len(batch)
    return n


def write(fmt: str, rows: Iterable[dict], out, *, data_kind: str = "text") -> int:
    """Write ``rows`` to ``out`` in format ``fmt`` (one of :data:`FORMATS`); the number of rows."""
    if fmt == "jsonl":
        return write_jsonl(rows, out)
    if fmt == "csv":
        return write_csv(rows, out)
    if fmt == "label_studio":
        return write_label_studio(rows, out, data_kind=data_kind)
    if fmt == "parquet":
        return write_parquet(rows, out)
    raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
