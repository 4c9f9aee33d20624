"""The whole label-quality report: :class:`QualityInput` arrays in, one JSON-safe dict out, put
together from the HLP, ambiguity and guideline-version parts. Pure NumPy; conventions in
:mod:`annotation.quality`."""

import math
from dataclasses import dataclass, field

import numpy as np

from annotation.agreement import (
    class_counts_from_triples,
    fleiss_kappa_from_counts,
    krippendorff_alpha_from_counts,
    labeler_confusion_from_counts,
    percent_agreement_from_counts,
    specific_agreement_from_counts,
)
from annotation.consensus import dawid_skene_from_triples, majority_vote_from_counts

from .intervals import hlp_by_truth_source
from .quality_ambiguity import (
    BORDERLINE_MIN_UNCERTAIN,
    MERGE_MIN_RATE,
    MIN_PAIR_DISAGREEMENTS,
    MIN_PAIR_RATE,
    confused_pairs,
    disputed_items,
)
from .quality_hlp import (
    _check_triples,
    _ratio,
    _scalar_ratio,
    group_quality,
    label_entropy,
    labeler_accuracy,
    labeler_agreement,
    labeler_speed,
    project_hlp,
    reference_classes,
    wilson_interval,
)
from .quality_versions import agreement_by_version

# --------------------------------------------------------------------------------------------
# The whole report
# --------------------------------------------------------------------------------------------


def json_safe(value):
    """A copy of ``value`` that ``json.dumps(..., allow_nan=False)`` accepts: NumPy scalars and
    arrays become Python numbers and lists, NaN and infinities become None."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        f = float(value)
        return f if math.isfinite(f) else None
    return value


@dataclass(frozen=True, eq=False)
class QualityInput:
    """Everything :func:`compute_report` needs, as arrays. Shapes: L labels, N items, M labelers,
    K classes.

    item_idx, labeler_idx, label : int (L,)   the current labels, one per (item, labeler)
    unsure : bool (L,)                        flagged "unsure" by the labeler
    duration_ms : float (L,)                  time spent, NaN where unknown
    version : int (L,)                        guideline version, -1 where none
    truth : float (N,)                        ground-truth class, NaN where none
    truth_source : int (N,)                   0 none, 1 gold, 2 SME resolution
    class_names : list[str] (K), ambiguity : bool (K,)
    labeler_names : list[str] (M), labeler_ids : int (M,)   database ids, for links
    item_ids : int (N,), item_names : list[str] (N)         database ids and external ids
    slices : {key: (codes int (N,) with -1 = no value, [value names])}; a tag is the key
                                              "tag:<name>" with the one value "yes"
    gold, resolution : float (N,) or None     each truth source apart, NaN where none
    resolver : int (N,) or None               labeler index of the resolving SME, -1 for none
    """

    item_idx: np.ndarray
    labeler_idx: np.ndarray
    label: np.ndarray
    unsure: np.ndarray
    duration_ms: np.ndarray
    version: np.ndarray
    truth: np.ndarray
    truth_source: np.ndarray
    class_names: list
    ambiguity: np.ndarray
    labeler_names: list
    labeler_ids: np.ndarray
    item_ids: np.ndarray
    item_names: list
    slices: dict = field(default_factory=dict)
    gold: np.ndarray | None = None
    resolution: np.ndarray | None = None
    resolver: np.ndarray | None = None

    @property
    def n_items(self) -> int:
        return int(self.truth.shape[0])

    @property
    def n_labelers(self) -> int:
        return len(self.labeler_names)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


@dataclass(frozen=True)
class ReportSettings:
    min_slice_items: int = 20  # a slice value needs this many labelled items to be shown
    max_slice_values: int = 50  # per metadata key, the largest values are kept
    top_pairs: int = 10
    top_disputed: int = 20
    random_state: int = 0  # ties in majority vote and Dawid-Skene
    dawid_skene_max_iter: int = 200


HLP_LABELS = {
    "ground_truth": "Accuracy of labels against ground truth (gold, else SME resolution)",
    "pairwise_agreement": "Proxy: chance that two labelers of the same item agree (no ground truth yet)",
    None: "Not enough labels: no ground truth and no item labelled twice",
}


def _rows(columns: dict, names: list[str]) -> list[dict]:
    """Dict of equal-length arrays -> list of row dicts."""
    return [{k: v[i] for k, v in columns.items()} for i in range(len(names))]


def _consensus(inp: QualityInput, counts, settings: ReportSettings):
    k = inp.n_classes
    mv, mv_ties = majority_vote_from_counts(counts, random_state=settings.random_state)
    ds = dawid_skene_from_triples(
        inp.item_idx,
        inp.labeler_idx,
        inp.label,
        n_items=inp.n_items,
        n_labelers=inp.n_labelers,
        n_classes=k,
        max_iter=settings.dawid_skene_max_iter,
        random_state=settings.random_state,
    )
    labelled = counts.sum(axis=1) > 0
    gold = (inp.truth_source == 1) & labelled
    t = inp.truth[gold]

    def scored(pred):
        correct = int((pred[gold] == t).sum())
        n = int(gold.sum())
        low, high = wilson_interval(correct, n)
        return {"correct": correct, "scored": n, "accuracy": _scalar_ratio(correct, n),
                "ci_low": float(low), "ci_high": float(high)}  # fmt: skip

    # Estimated accuracy of each labeler under the model: sum_k prior_k * P(says k | true k).
    ds_accuracy = np.einsum("k,mkk->m", ds.priors, ds.confusion) if inp.n_labelers else np.zeros(0)
    counted = np.bincount(inp.labeler_idx, minlength=inp.n_labelers)
    ds_accuracy = np.where(counted > 0, ds_accuracy, np.nan)
    report = {
        "scored_against": "gold",
        "gold_items": int(gold.sum()),
        "majority_vote": {
            **scored(mv),
            "ties": int(mv_ties.sum()),
            "ties_on_gold": int(mv_ties[gold].sum()),
            "tie_break": "uniform random among the tied classes, seeded",
        },
        "dawid_skene": {**scored(ds.labels), "n_iter": ds.n_iter, "converged": ds.converged},
        "items_where_they_differ": int(((mv != ds.labels) & labelled).sum()),
    }
    return report, ds_accuracy


# A tag's slice key (annotation.models.tags.TAG_SLICE_PREFIX; not imported: this module is pure).
TAG_SLICE_PREFIX = "tag:"


def _slices(inp, truth, settings):
    out = []
    for key in sorted(inp.slices):
        codes, values = inp.slices[key]
        codes = np.asarray(codes, dtype=np.int64)
        g = group_quality(inp.item_idx, inp.label, truth, codes, len(values), inp.n_classes, inp.ambiguity, inp.unsure)
        # Every tag is shown, however few its items: someone chose to ask about it, and its
        # interval says how little a small one tells. The floor is for metadata's many values.
        floor = 1 if str(key).startswith(TAG_SLICE_PREFIX) else settings.min_slice_items
        shown = np.flatnonzero(g["items"] >= floor)
        dropped = int(((g["items"] > 0) & (g["items"] < floor)).sum())
        if shown.size > settings.max_slice_values:
            shown = shown[np.argsort(-g["items"][shown], kind="stable")[: settings.max_slice_values]]
        shown = sorted(shown.tolist(), key=lambda i: str(values[i]))
        rows = []
        for i in shown:
            row = {name: arr[i] for name, arr in g.items()}
            rows.append({"value": values[i], **row})
        out.append(
            {
                "key": key,
                "values": rows,
                "values_below_min_items": dropped,
                "values_not_shown": max(0, int((g["items"] >= floor).sum()) - len(rows)),
            }
        )
    return out


def compute_report(inp: QualityInput, settings: ReportSettings | None = None) -> dict:
    """The whole label-quality report of one single-label project, JSON-safe (NaN -> None).

    Costs O(L K + N K + M K^2) for everything but Dawid-Skene (O(L K) per EM round) and the
    per-version loop (one pass over the labels per version); a million labels take seconds.

    Top-level keys: supported, counts, agreement, hlp, labelers, classes, confusion, ambiguity,
    slices, disputed_items, guideline_versions, consensus, settings.
    """
    settings = settings or ReportSettings()
    k, n, m = inp.n_classes, inp.n_items, inp.n_labelers
    item_idx, labeler_idx, label = _check_triples(inp.item_idx, inp.labeler_idx, inp.label)
    amb = np.asarray(inp.ambiguity, dtype=bool)
    unsure = np.asarray(inp.unsure, dtype=bool)
    truth = np.asarray(inp.truth, dtype=np.float64)
    counts = class_counts_from_triples(item_idx, label, n, k)
    n_i = counts.sum(axis=1)
    labelled = n_i > 0

    # --- headline agreement -----------------------------------------------------------------
    confusion = labeler_confusion_from_counts(counts)
    agreement = {
        "krippendorff_alpha": krippendorff_alpha_from_counts(counts),
        "fleiss_kappa": fleiss_kappa_from_counts(counts),
        "percent_agreement": percent_agreement_from_counts(counts),
        "paired_items": int((n_i >= 2).sum()),
        "paired_labels": int(n_i[n_i >= 2].sum()),
        "pairs": int((n_i * (n_i - 1)).sum() // 2),
        "labelers": int(np.unique(labeler_idx).size),
        "items_with_disagreement": int(((counts > 0).sum(axis=1) >= 2).sum()),
    }

    # --- per labeler --------------------------------------------------------------------------
    acc = labeler_accuracy(item_idx, labeler_idx, label, truth, m)
    agr = labeler_agreement(item_idx, labeler_idx, label, n, m, k)
    speed = labeler_speed(labeler_idx, inp.duration_ms, m)
    n_labels = np.bincount(labeler_idx, minlength=m)
    n_amb = np.bincount(labeler_idx[amb[label]], minlength=m)
    n_uns = np.bincount(labeler_idx[unsure], minlength=m)
    consensus, ds_accuracy = _consensus(inp, counts, settings)
    labeler_columns = {
        "id": np.asarray(inp.labeler_ids),
        "name": list(inp.labeler_names),
        "labels": n_labels,
        "pairs": agr["pairs"],
        "agreement": agr["agreement"],
        "kappa": agr["kappa"],
        "scored": acc["scored"],
        "correct": acc["correct"],
        "accuracy": acc["accuracy"],
        "ci_low": acc["ci_low"],
        "ci_high": acc["ci_high"],
        "dawid_skene_accuracy": ds_accuracy,
        "timed": speed["timed"],
        "labels_per_hour": speed["labels_per_hour"],
        "median_seconds": speed["median_seconds"],
        "ambiguity_share": _ratio(n_amb, n_labels),
        "unsure_share": _ratio(n_uns, n_labels),
    }
    labelers = [r for r in _rows(labeler_columns, inp.labeler_names) if r["labels"] > 0]
    labelers.sort(key=lambda r: (-r["labels"], r["name"]))

    # --- per class ----------------------------------------------------------------------------
    ref = reference_classes(counts, truth, settings.random_state)
    by_ref = group_quality(item_idx, label, truth, ref, k, k, amb, unsure)
    given = np.bincount(label, minlength=k)
    specific = specific_agreement_from_counts(counts)
    classes = []
    for c in range(k):
        classes.append(
            {
                "index": c,
                "name": inp.class_names[c],
                "is_ambiguity": bool(amb[c]),
                "given": int(given[c]),
                "specific_agreement": specific[c],
                "reference_items": by_ref["items"][c],
                "truth_items": by_ref["truth_items"][c],
                "scored": by_ref["scored"][c],
                "correct": by_ref["correct"][c],
                "accuracy": by_ref["accuracy"][c],
                "ci_low": by_ref["ci_low"][c],
                "ci_high": by_ref["ci_high"][c],
                "labels": by_ref["labels"][c],
                "ambiguity_share": by_ref["ambiguity_share"][c],
                "unsure_share": by_ref["unsure_share"][c],
            }
        )

    # --- ambiguity ------------------------------------------------------------------------------
    uncertain_labels = amb[label] | unsure
    uncertain_per_item = np.bincount(item_idx[uncertain_labels], minlength=n)
    pairs = confused_pairs(confusion, amb, uncertain_per_item, n_i, counts, top=settings.top_pairs)
    for p in pairs:
        p["a_name"], p["b_name"] = inp.class_names[p["a"]], inp.class_names[p["b"]]
    row_sum = confusion.sum(axis=1, keepdims=True)
    ambiguity = {
        "ambiguity_classes": [inp.class_names[c] for c in np.flatnonzero(amb)],
        "ambiguity_labels": int(amb[label].sum()),
        "ambiguity_share": _scalar_ratio(amb[label].sum(), label.size),
        "unsure_labels": int(unsure.sum()),
        "unsure_share": _scalar_ratio(unsure.sum(), label.size),
        "confused_pairs": pairs,
        "rule": {
            "borderline": f"uncertain_share >= {BORDERLINE_MIN_UNCERTAIN}",
            "merge": f"p_b_given_a and p_a_given_b >= {MERGE_MIN_RATE}, more than two classes",
            "clarify": "otherwise",
            "min_disagreements": MIN_PAIR_DISAGREEMENTS,
            "min_rate": MIN_PAIR_RATE,
        },
    }

    # --- disputed items -------------------------------------------------------------------------
    chosen = disputed_items(counts, top=settings.top_disputed)
    entropy = label_entropy(counts[chosen])
    unsure_per_item = np.bincount(item_idx[unsure], minlength=n)
    disputed = []
    for idx, h in zip(chosen.tolist(), entropy.tolist(), strict=True):
        given_here = sorted(np.flatnonzero(counts[idx]).tolist(), key=lambda c: (-counts[idx, c], c))
        disputed.append(
            {
                "item_id": int(inp.item_ids[idx]),
                "external_id": inp.item_names[idx],
                "entropy_bits": h,
                "labels": int(n_i[idx]),
                "counts": [[inp.class_names[c], int(counts[idx, c])] for c in given_here],
                "unsure": int(unsure_per_item[idx]),
                "truth": inp.class_names[int(truth[idx])] if not np.isnan(truth[idx]) else None,
            }
        )

    # --- guideline versions ---------------------------------------------------------------------
    versions = agreement_by_version(item_idx, labeler_idx, label, inp.version, truth, n, k, amb, unsure)

    report = {
        "supported": True,
        "counts": {
            "annotations": int(label.size),
            "items": int(labelled.sum()),
            "labelers": agreement["labelers"],
            "classes": k,
            "truth_items": int((labelled & ~np.isnan(truth)).sum()),
            "gold_items": int((labelled & (inp.truth_source == 1)).sum()),
            "resolution_items": int((labelled & (inp.truth_source == 2)).sum()),
        },
        "agreement": agreement,
        "hlp": {
            **project_hlp(item_idx, labeler_idx, label, truth, n, m, k),
        },
        "labelers": labelers,
        "classes": classes,
        "confusion": {
            "classes": list(inp.class_names),
            "counts": confusion,
            "row_share": _ratio(confusion, np.broadcast_to(row_sum, confusion.shape)),
        },
        "ambiguity": ambiguity,
        "slices": _slices(inp, truth, settings),
        "disputed_items": disputed,
        "guideline_versions": versions,
        "consensus": consensus,
        "settings": {
            "min_slice_items": settings.min_slice_items,
            "max_slice_values": settings.max_slice_values,
            "top_pairs": settings.top_pairs,
            "top_disputed": settings.top_disputed,
            "random_state": settings.random_state,
        },
    }
    report["hlp"]["label"] = HLP_LABELS[report["hlp"]["basis"]]
    report["hlp_by_source"] = _hlp_by_source(inp, item_idx, labeler_idx, label)
    return json_safe(report)


HLP_SOURCE_NOTE = (
    "SMEs resolve mostly the items labelers disagreed on, so accuracy against resolutions is measured on "
    "hard items and runs lower than against gold, which is drawn without regard to disagreement. A label "
    "by the SME who gave the item's resolution is not scored against it."
)


def _hlp_by_source(inp, item_idx, labeler_idx, label):
    """Project HLP against gold and against SME resolutions, apart (annotation.intervals); None
    when the input does not carry the two sources."""
    if inp.gold is None or inp.resolution is None or inp.resolver is None:
        return None
    by = hlp_by_truth_source(item_idx, labeler_idx, label, inp.gold, inp.resolution, inp.resolver)
    out = {"interval_method": by["interval_method"], "note": HLP_SOURCE_NOTE}
    for source in ("gold", "resolution"):
        out[source] = {name: values[0] for name, values in by[source].items()}
        out[source]["items"] = int((~np.isnan(getattr(inp, source))).sum())
    return out
