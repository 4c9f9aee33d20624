"""Evaluation report of a trained version: metrics on the dev split (or out-of-fold under
cross-validation) and the test split, per slice, against human-level performance (HLP, from the
label-quality report), the previous model and the baselines, and the top-k mistakes."""

from __future__ import annotations

import logging

import numpy as np

from annotation.models import Item, QualityReport
from annotation.tag_slices import is_tag_slice, tag_metadata, tag_name, with_tags

from . import metrics as M
from . import worknext as W
from .artifacts import load_model
from .errors import readable_error
from .models import ModelVersion

logger = logging.getLogger(__name__)


def _slice_codes(metadata: list, max_values: int) -> dict[str, tuple[np.ndarray, list[str]]]:
    """{key: (codes (R,), values)} of each scalar metadata key; values named as the quality
    report names them (str(value), JSON for booleans). Keeps the ``max_values`` largest values."""
    import json

    raw: dict[str, dict[int, str]] = {}
    for i, meta in enumerate(metadata):
        for key, value in meta.items():
            if value is None or isinstance(value, dict | list):
                continue
            raw.setdefault(str(key), {})[i] = json.dumps(value) if isinstance(value, bool) else str(value)
    out = {}
    for key, values in sorted(raw.items()):
        names, counts = np.unique(list(values.values()), return_counts=True)
        keep = sorted(names[np.argsort(-counts, kind="stable")[:max_values]].tolist())
        position = {v: j for j, v in enumerate(keep)}
        codes = np.full(len(metadata), -1, dtype=np.int64)
        for i, v in values.items():
            codes[i] = position.get(v, -1)
        out[key] = (codes, keep)
    return out


def _project_slice_shares(project, max_values, tags=None):
    """{(key, value): share of the project's items}; ``tags`` (annotation.tag_slices.tag_metadata)
    make each tag the slice ("tag:<name>", "yes")."""
    rows = list(Item.objects.filter(project=project).values_list("pk", "metadata").iterator(chunk_size=5000))
    metadata = with_tags([pk for pk, _ in rows], [m for _, m in rows], tags or {})
    n = max(len(metadata), 1)
    shares = {}
    for key, (codes, values) in _slice_codes(metadata, max_values).items():
        counts = np.bincount(codes[codes >= 0], minlength=len(values))
        for j, value in enumerate(values):
            shares[(key, value)] = counts[j] / n
    return shares


def _quality_report(project):
    """The label-quality report for HLP: refreshed if stale (this runs in the worker), else the
    latest stored one; None when there is none."""
    try:
        from annotation.services.quality import refresh_quality_report

        report_id = refresh_quality_report(project.pk)
        if report_id is not None:
            return QualityReport.objects.filter(pk=report_id).first()
    except Exception:
        logger.exception("could not refresh the quality report of %s; using the latest stored one", project)
    return project.quality_reports.order_by("-computed_at", "-pk").first()


def _hlp_by_slice(report_data) -> tuple[dict, dict]:
    """({(key, value): (hlp, basis, scored)}, project-level HLP block) from a stored quality report."""
    by_slice = {}
    if not report_data or not report_data.get("supported", True):
        return by_slice, {}
    for key in report_data.get("slices") or []:
        for row in key.get("values") or []:
            if row.get("scored"):
                by_slice[(key["key"], str(row["value"]))] = (row.get("accuracy"), "ground_truth", row.get("scored"))
            elif row.get("pairwise_agreement") is not None:
                by_slice[(key["key"], str(row["value"]))] = (row["pairwise_agreement"], "pairwise_agreement", 0)
    hlp = report_data.get("hlp") or {}
    return by_slice, {k: hlp.get(k) for k in ("basis", "value", "ci_low", "ci_high", "label", "scored_items")}


def _hlp_intervals(report_data) -> dict:
    """{(key, value): (hlp, ci_low, ci_high)} of the report's slice rows scored against ground
    truth (their intervals are cluster-aware: several labels of one item)."""
    out = {}
    if not report_data or not report_data.get("supported", True):
        return out
    for key in report_data.get("slices") or []:
        for row in key.get("values") or []:
            if row.get("scored") and row.get("accuracy") is not None:
                out[(key["key"], str(row["value"]))] = (row["accuracy"], row.get("ci_low"), row.get("ci_high"))
    return out


def _work_next(y_eval, pred, slice_codes, shares, report_data, hlp_project) -> dict:
    """The "where to work next" table (training/worknext.py) over the evaluated items, one row per
    slice value and per tag. A slice the report has no scored row for (fewer labelled items than
    the report's minimum, or no ground truth) is measured against the project's HLP, marked
    ``hlp_basis: "project"``."""
    by_slice = _hlp_intervals(report_data)
    project_hlp = (hlp_project or {}).get("value") if (hlp_project or {}).get("basis") == "ground_truth" else None
    names, members, share, hlp, low, high, basis = [], [], [], [], [], [], []
    for key, (codes, values) in slice_codes.items():
        for j, value in enumerate(values):
            names.append((key, value))
            members.append(codes == j)
            share.append(shares.get((key, value), 0.0))
            found = by_slice.get((key, value))
            if found is None and project_hlp is not None:
                found, where = (project_hlp, hlp_project.get("ci_low"), hlp_project.get("ci_high")), "project"
            else:
                where = "slice" if found is not None else None
            h, lo, hi = found or (None, None, None)
            hlp.append(np.nan if h is None else h)
            low.append(np.nan if lo is None else lo)
            high.append(np.nan if hi is None else hi)
            basis.append(where)
    member = np.array(members, dtype=bool).reshape(len(names), len(y_eval))
    t = W.work_next(y_eval, pred, member, share, hlp, low, high)
    rows = []
    for i in t["order"].tolist():
        key, value = names[i]
        tagged = is_tag_slice(key)
        row = {col: t[col][i].item() for col in t if col != "order"}
        row.update(
            slice=f"tag {tag_name(key)}" if tagged else f"{key}={value}",
            key=key,
            value=value,
            kind="tag" if tagged else "metadata",
            tag=tag_name(key) if tagged else None,
            hlp_basis=basis[i],
        )
        rows.append(row)
    return {"rows": rows, "rule": W.RULE, "errors": int((np.asarray(y_eval) != np.asarray(pred)).sum()),
            "evaluated": len(y_eval), "share_of": "the project's items"}  # fmt: skip


def _previous_model(version):
    previous = ModelVersion.objects.filter(project_id=version.project_id, is_promoted=True).exclude(pk=version.pk)
    previous = previous.first() or (
        ModelVersion.objects.ready()
        .filter(project_id=version.project_id, created_at__lte=version.created_at)
        .exclude(pk=version.pk)
        .order_by("-created_at", "-pk")
        .first()
    )
    return previous


def _previous_baseline(version, data, names_ids, eval_rows):
    """The previous model (the current one, else the latest ready one) scored on the same items."""
    previous = _previous_model(version)
    if previous is None:
        return None
    block = {
        "id": previous.short_id,
        "trainer": previous.trainer,
        "promoted": previous.is_promoted,
        "reported_accuracy": (previous.metrics or {}).get("evaluation", {}).get("accuracy"),
        "accuracy": None,
        "n": 0,
    }
    try:
        prev_model = load_model(previous)
        prev_ids = [c["id"] for c in previous.snapshot.classes]
        proba = prev_model.predict_proba(data.inputs(eval_rows, prev_model.image_size))
        predicted = np.array(prev_ids, dtype=np.int64)[proba.argmax(axis=1)] if len(eval_rows) else np.zeros(0)
        truth = np.array(names_ids, dtype=np.int64)[data.y[eval_rows]]
        block.update(accuracy=M.accuracy(truth, predicted), n=len(eval_rows))
    except Exception as exc:
        logger.exception("could not score the previous model %s", previous.short_id)
        block["error"] = readable_error(exc)
    return block


def _top_k(data, rows, proba, names, k):
    """The k most confidently wrong and the k most uncertain of ``rows`` (proba aligned with rows)."""
    y = data.y[rows]

    def entry(j, score_name, score):
        i = int(rows[j])
        pred = int(proba[j].argmax())
        return {
            "item_id": int(data.item_ids[i]),
            "external_id": data.external_ids[i],
            "label": names[int(y[j])],
            "predicted": names[pred],
            "p_predicted": float(proba[j, pred]),
            "p_label": float(proba[j, int(y[j])]),
            score_name: float(score),
            "has_thumbnail": bool(data.has_thumbnail[i]),
        }

    wrong, conf = M.confidently_wrong(y, proba, k)
    unsure, margin = M.most_uncertain(proba, k)
    return {
        "confidently_wrong": [entry(j, "confidence", c) for j, c in zip(wrong.tolist(), conf.tolist(), strict=True)],
        "most_uncertain": [entry(j, "margin", m) for j, m in zip(unsure.tolist(), margin.tolist(), strict=True)],
    }


def evaluate_model(version, project, data, model, names, eval_rows, eval_proba, fit_rows, test, folds, config):
    """The stored metrics of a version: the evaluation on ``eval_rows`` (dev, or out-of-fold
    predictions when ``folds`` were used), baselines, slices, the gap to HLP, top-k lists and
    the test split's accuracy."""
    size = model.image_size
    k = len(names)
    y_eval = data.y[eval_rows]
    headline = M.evaluate(y_eval, eval_proba, n_bins=int(config["CALIBRATION_BINS"]))
    headline.update(
        method="cross_validation" if folds else "dev",
        folds=len(folds) or None,
        evaluated_on="train + dev, out of fold" if folds else "dev",
    )
    pred = eval_proba.argmax(axis=1) if len(eval_rows) else np.zeros(0, dtype=np.int64)

    # Baselines: the majority class of the training labels, and the previous model.
    fit_counts = np.bincount(data.y[fit_rows], minlength=k)
    majority = int(fit_counts.argmax())
    baselines = {
        "majority_class": {"class": names[majority], "accuracy": M.accuracy(y_eval, np.full(y_eval.size, majority))},
        "previous_model": _previous_baseline(version, data, [c["id"] for c in version.snapshot.classes], eval_rows),
    }

    # Per slice, and the gap to HLP.
    # Per slice (metadata values and tags alike: one extra query reads every tag of the project),
    # with calibration by slice, and the gap to HLP.
    slices = []
    max_values = int(config["MAX_SLICE_VALUES"])
    tags = tag_metadata(project.pk)
    eval_meta = with_tags(data.item_ids[eval_rows], [data.metadata[i] for i in eval_rows.tolist()], tags)
    slice_codes = _slice_codes(eval_meta, max_values)
    for key, (codes, values) in slice_codes.items():
        count, acc = M.per_slice_accuracy(y_eval, pred, codes, len(values))
        ece = M.per_slice_ece(y_eval, eval_proba, codes, len(values), int(config["CALIBRATION_BINS"]))
        slices.append(
            {
                "key": key,
                "values": [
                    {"value": v, "n": int(count[j]), "accuracy": float(acc[j]), "ece": float(ece[j])}
                    for j, v in enumerate(values)
                ],
            }
        )
    quality = _quality_report(project)
    hlp_slices, hlp_project = _hlp_by_slice(quality.data if quality is not None else None)
    shares = _project_slice_shares(project, max_values, tags)
    gap_names, gap_acc, gap_hlp, gap_share, gap_meta = [], [], [], [], []
    for block in slices:
        for row in block["values"]:
            hlp, basis, scored = hlp_slices.get((block["key"], row["value"]), (None, None, 0))
            gap_names.append(f"{block['key']}={row['value']}")
            gap_acc.append(row["accuracy"])
            gap_hlp.append(np.nan if hlp is None else hlp)
            gap_share.append(shares.get((block["key"], row["value"]), 0.0))
            gap_meta.append(
                {"key": block["key"], "value": row["value"], "n": row["n"], "basis": basis, "scored": scored}
            )
    rows = M.gap_to_hlp(gap_names, gap_acc, gap_hlp, gap_share)
    meta_by_name = dict(zip(gap_names, gap_meta, strict=True))
    for row in rows:
        row.update(meta_by_name[row["slice"]])
    gap = {
        "rows": rows,
        "hlp": hlp_project,
        "quality_report": (
            {"id": quality.pk, "computed_at": quality.computed_at.isoformat()} if quality is not None else None
        ),
        "share_of": "the project's items",
    }
    work_next = _work_next(y_eval, pred, slice_codes, shares, quality.data if quality else None, hlp_project)

    # Top-k lists: the training data and the evaluation items. Under cross-validation the
    # training rows are the evaluated rows, and their out-of-fold predictions find the label
    # errors that in-sample predictions have memorised away.
    top = int(config["TOP_K"])
    train_proba = model.predict_proba(data.inputs(fit_rows, size))
    top_k = {
        "train": _top_k(data, fit_rows, eval_proba if folds else train_proba, names, top),
        "dev": _top_k(data, eval_rows, eval_proba, names, top),
        "train_predictions": "out of fold" if folds else "in sample",
    }
    train_block = {"n": len(fit_rows), "accuracy": M.accuracy(data.y[fit_rows], train_proba.argmax(axis=1))}

    # The test split: reported once, never used to choose.
    test_block = None
    if len(test):
        test_proba = model.predict_proba(data.inputs(test, size))
        test_block = {"n": len(test), "accuracy": M.accuracy(data.y[test], test_proba.argmax(axis=1))}

    return {
        "schema": 1,
        "classes": names,
        "evaluation": headline,
        "baselines": baselines,
        "slices": slices,
        "gap_to_hlp": gap,
        "work_next": work_next,
        "top_k": top_k,
        "train": train_block,
        "test": test_block,
        "fit": {"epochs_run": getattr(model, "epochs_run_", None), "image_size": size or None},
        # Per-item predictions on the evaluation items, as class ids (training/side_by_side.py
        # pairs two versions on them); runs.py moves this block to ModelVersion.predictions.
        "predictions": _predictions(version, data, eval_rows, pred, majority),
    }


def _predictions(version, data, eval_rows, pred, majority) -> dict:
    ids = np.array([c["id"] for c in version.snapshot.classes], dtype=np.int64)
    return {
        "item_ids": data.item_ids[eval_rows].astype(np.int64).tolist(),
        "predicted": ids[np.asarray(pred, dtype=np.int64)].tolist(),
        "label": ids[data.y[eval_rows]].tolist(),
        "majority": int(ids[majority]),
    }
