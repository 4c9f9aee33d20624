"""Agreement by guideline version: how well labelers agreed under each version of the guidelines.
Pure NumPy; conventions in :mod:`annotation.quality`."""

import numpy as np

from annotation.agreement import (
    class_counts_from_triples,
    fleiss_kappa_from_counts,
    krippendorff_alpha_from_counts,
    percent_agreement_from_counts,
)

from .quality_hlp import _check_triples, _correct, _scalar_ratio, wilson_interval

# --------------------------------------------------------------------------------------------
# Agreement by guideline version
# --------------------------------------------------------------------------------------------


def agreement_by_version(
    item_idx, labeler_idx, label, version, truth, n_items: int, n_classes: int, ambiguity, unsure
) -> list[dict]:
    """Every agreement metric computed separately on the labels made under each guideline version.

    Only labels of the same version form pairs: that is what tells whether new instructions
    raised agreement. Labels made under no guideline have version code -1 and form their own
    group.

    Parameters
    ----------
    item_idx, labeler_idx, label : int arrays of shape (L,)
    version : int array of shape (L,)
        Guideline version code of each label (any integers; -1: none).
    truth : float array of shape (N,)
    n_items, n_classes : int
    ambiguity : bool array of shape (K,)
    unsure : bool array of shape (L,)

    Returns
    -------
    list of dicts, one per version in ascending order: version, labels, labelers, items,
    paired_items (items with >= 2 labels of that version), pairs, percent_agreement,
    fleiss_kappa, krippendorff_alpha, accuracy, correct, scored, ci_low, ci_high,
    ambiguity_share, unsure_share.
    """
    item_idx, labeler_idx, label = _check_triples(item_idx, labeler_idx, label)
    version = np.asarray(version, dtype=np.int64).ravel()
    amb = np.asarray(ambiguity, dtype=bool)
    uns = np.asarray(unsure, dtype=bool).ravel()
    out = []
    for v in np.unique(version):
        sel = version == v
        it, lab = item_idx[sel], label[sel]
        counts = class_counts_from_triples(it, lab, n_items, n_classes)
        n_i = counts.sum(axis=1)
        scored, correct = _correct(it, lab, truth)
        low, high = wilson_interval(int(correct.sum()), int(scored.sum()))
        out.append(
            {
                "version": int(v),
                "labels": int(sel.sum()),
                "labelers": int(np.unique(labeler_idx[sel]).size),
                "items": int((n_i > 0).sum()),
                "paired_items": int((n_i >= 2).sum()),
                "pairs": int((n_i * (n_i - 1)).sum() // 2),
                "percent_agreement": percent_agreement_from_counts(counts),
                "fleiss_kappa": fleiss_kappa_from_counts(counts),
                "krippendorff_alpha": krippendorff_alpha_from_counts(counts),
                "correct": int(correct.sum()),
                "scored": int(scored.sum()),
                "accuracy": _scalar_ratio(correct.sum(), scored.sum()),
                "ci_low": float(low),
                "ci_high": float(high),
                "ambiguity_share": _scalar_ratio(amb[lab].sum(), lab.size),
                "unsure_share": _scalar_ratio(uns[sel].sum(), lab.size),
            }
        )
    return out
