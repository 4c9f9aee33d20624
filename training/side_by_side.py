"""Versions side by side, and whether a model beats its baselines beyond noise.

Each ready version stores its per-item predictions on its evaluation items (``ModelVersion.
predictions``: item ids, predicted and label class ids, the majority class id; written by
training/evaluation.py), so comparing two versions is a join on item ids, never a model load.
Two versions are paired on the items both were evaluated on *with the same label* (a relabelled
item has no common truth; how many were set aside is reported); McNemar's test on those pairs
(training/compare.py) says whether their difference is beyond noise. Versions trained before
predictions were stored cannot be paired: the answer says "retrain to compare".

Promotion asks for a reason (training/registry.py) when :func:`verdict` has concerns: the model is
not shown to beat the majority-class baseline, or the current model, beyond noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import compare

RETRAIN = "retrain to compare"


@dataclass
class Predictions:
    item_ids: np.ndarray  # (R,) int
    predicted: np.ndarray  # (R,) class ids
    label: np.ndarray  # (R,) class ids
    majority: int  # class id of the training data's most common class


def predictions_of(version) -> Predictions | None:
    stored = version.predictions or {}
    if not stored.get("item_ids"):
        return None
    return Predictions(
        np.asarray(stored["item_ids"], dtype=np.int64),
        np.asarray(stored["predicted"], dtype=np.int64),
        np.asarray(stored["label"], dtype=np.int64),
        int(stored.get("majority", -1)),
    )


def _pct(value) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def pair(a, b) -> dict:
    """Version ``b`` against version ``a`` on their shared evaluation items (see the module
    docstring): {available, a, b, n, accuracy_a, accuracy_b, difference, table, pvalue, method,
    beyond_noise, better, relabelled}; without stored predictions {available: False, reason}."""
    head = {"a": a.short_id, "b": b.short_id}
    pa, pb = predictions_of(a), predictions_of(b)
    missing = [v.short_id for v, p in ((a, pa), (b, pb)) if p is None]
    if missing:
        reason = f"model {', '.join(missing)} has no per-item predictions; {RETRAIN}"
        return {**head, "available": False, "reason": reason}
    ia, ib = compare.align(pa.item_ids, pb.item_ids)
    same = pa.label[ia] == pb.label[ib]
    ia, ib = ia[same], ib[same]
    if ia.size == 0:
        return {**head, "available": False, "reason": "the two models share no evaluation item with the same label"}
    truth = pa.label[ia]
    out = compare.paired_comparison(pa.predicted[ia] == truth, pb.predicted[ib] == truth)
    return {**head, "available": True, "relabelled": int((~same).sum()), **out}


def versus_majority(version) -> dict | None:
    """The model against always predicting the majority class, on its own evaluation items (a is
    the baseline, b the model); None without stored predictions."""
    p = predictions_of(version)
    if p is None:
        return None
    out = compare.paired_comparison(p.label == p.majority, p.predicted == p.label)
    return {"available": True, "a": "majority class", "b": version.short_id, **out}


def _test_words(result) -> str:
    return f"McNemar p = {result['pvalue']:.3g} on {result['n']:,} items, {result['method']}"


def verdict(version, current=None) -> dict:
    """What the model page and promotion say about ``version`` against the majority-class
    baseline and the ``current`` (promoted) model: {majority, current, concerns, notes}. Each
    concern is a plain sentence; none means the model beats both beyond noise. A version without
    stored predictions (trained before they were kept) is judged by its headline accuracy alone:
    a concern only when it is no higher, and a note saying the test could not be run."""
    concerns, notes = [], []
    metrics = version.metrics or {}
    accuracy = (metrics.get("evaluation") or {}).get("accuracy")
    majority = versus_majority(version)
    if majority is not None:
        if majority["better"] != "b":
            concerns.append(
                f"Model {version.short_id} does not beat the majority-class baseline beyond noise: "
                f"{_pct(majority['accuracy_b'])} against {_pct(majority['accuracy_a'])} ({_test_words(majority)})."
            )
    else:
        # Trained before per-item predictions were stored: only the headline figures can speak.
        base = ((metrics.get("baselines") or {}).get("majority_class") or {}).get("accuracy")
        majority = {"available": False, "reason": RETRAIN, "accuracy_a": base, "accuracy_b": accuracy}
        if base is not None and accuracy is not None and accuracy <= base:
            concerns.append(
                f"Model {version.short_id} does not beat the majority-class baseline: {_pct(accuracy)} against "
                f"{_pct(base)}."
            )
        else:
            notes.append(f"No per-item predictions to test against the majority class beyond noise; {RETRAIN}.")
    against = None
    if current is not None and current.pk != version.pk:
        against = pair(current, version)
        if not against["available"]:
            theirs = (current.metrics or {}).get("evaluation", {}).get("accuracy")
            if theirs is not None and accuracy is not None and accuracy <= theirs:
                concerns.append(
                    f"Model {version.short_id} does not beat the current model {current.short_id}: "
                    f"{_pct(accuracy)} against {_pct(theirs)} (headline figures; {against['reason']})."
                )
            else:
                notes.append(f"Not tested against the current model {current.short_id}: {against['reason']}.")
        elif against["better"] != "b":
            worse = against["better"] == "a"
            concerns.append(
                f"Model {version.short_id} {'is worse than' if worse else 'does not beat'} the current model "
                f"{current.short_id}{'' if worse else ' beyond noise'}: {_pct(against['accuracy_b'])} against "
                f"{_pct(against['accuracy_a'])} ({_test_words(against)})."
            )
    return {"majority": majority, "current": against, "concerns": concerns, "notes": notes}


# --------------------------------------------------------------------------------------------
# The comparison of two or more versions (the compare page and its API)
# --------------------------------------------------------------------------------------------


def _summary(version) -> dict:
    m = version.metrics or {}
    ev = m.get("evaluation") or {}
    gap = m.get("gap_to_hlp") or {}
    hlp = (gap.get("hlp") or {}).get("value")
    accuracy = ev.get("accuracy")
    return {
        "id": version.short_id,
        "trainer": version.trainer,
        "created_at": version.created_at.isoformat() if version.created_at else None,
        "is_promoted": version.is_promoted,
        "method": ev.get("method"),
        "n": ev.get("n"),
        "accuracy": accuracy,
        "macro_f1": ev.get("macro_f1"),
        "ece": ev.get("ece"),
        "test_accuracy": (m.get("test") or {}).get("accuracy"),
        "majority_accuracy": ((m.get("baselines") or {}).get("majority_class") or {}).get("accuracy"),
        "hlp": hlp,
        "gap_to_hlp": None if hlp is None or accuracy is None else hlp - accuracy,
        "epochs_run": (m.get("fit") or {}).get("epochs_run"),
        "has_predictions": bool((version.predictions or {}).get("item_ids")),
        "history": m.get("history"),
        "curve": compare.curve_summary(m.get("history")),
        "calibration": ev.get("calibration"),
    }


def _per_class(versions) -> list[dict]:
    """One row per class name (union, first-seen order): recall (accuracy on that class) and F1."""
    rows: dict[str, dict] = {}
    for j, v in enumerate(versions):
        m = v.metrics or {}
        ev = m.get("evaluation") or {}
        for i, name in enumerate(m.get("classes") or []):
            row = rows.setdefault(name, {"name": name, "recall": [None] * len(versions), "f1": [None] * len(versions)})
            for key in ("recall", "f1"):
                values = ev.get(key) or []
                row[key][j] = values[i] if i < len(values) else None
    return list(rows.values())


def _per_slice(versions) -> list[dict]:
    """One row per slice "key=value": accuracy, HLP and gap to HLP of each version."""
    rows: dict[str, dict] = {}
    width = len(versions)
    for j, v in enumerate(versions):
        for r in ((v.metrics or {}).get("gap_to_hlp") or {}).get("rows") or []:
            row = rows.setdefault(
                r["slice"],
                {"slice": r["slice"], "accuracy": [None] * width, "hlp": [None] * width, "gap": [None] * width},
            )
            row["accuracy"][j], row["hlp"][j], row["gap"][j] = r.get("model_accuracy"), r.get("hlp"), r.get("gap")
    return sorted(rows.values(), key=lambda r: r["slice"])


def compare_versions(versions) -> dict:
    """The comparison of ``versions`` (two or more ready versions of one project, the first the
    reference): a summary of each, per-class and per-slice rows, and each later version paired
    with the first (difference and McNemar's test)."""
    first = versions[0]
    return {
        "reference": first.short_id,
        "versions": [_summary(v) for v in versions],
        "classes": _per_class(versions),
        "slices": _per_slice(versions),
        "pairs": [pair(first, other) for other in versions[1:]],
    }


MAX_COMPARED = 6  # the charts' distinct series colours


def chosen_versions(project, ids) -> list:
    """The ready versions of ``project`` named by short id in ``ids`` (order kept, repeats
    dropped). Raises TrainingError on ``v`` for fewer than two, more than MAX_COMPARED, or an id
    that is not a ready version of this project (another project's model is "no such model" too)."""
    from .errors import TrainingError
    from .models import ModelVersion

    ids = list(dict.fromkeys(str(i).strip() for i in ids if str(i).strip()))
    if len(ids) < 2:
        raise TrainingError("pick at least two model versions to compare (?v=<id>&v=<id>)", "v")
    if len(ids) > MAX_COMPARED:
        raise TrainingError(f"compare at most {MAX_COMPARED} versions at once; {len(ids)} were given", "v")
    rows = {v.short_id: v for v in ModelVersion.objects.filter(project=project, short_id__in=ids)}
    unknown = [i for i in ids if i not in rows]
    if unknown:
        raise TrainingError(f"no model {', '.join(unknown)} in this project", "v")
    not_ready = [i for i in ids if rows[i].status != ModelVersion.Status.READY]
    if not_ready:
        raise TrainingError(f"model {', '.join(not_ready)} is not ready; only ready models can be compared", "v")
    return [rows[i] for i in ids]
