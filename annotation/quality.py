"""Label quality: human-level performance (HLP), ambiguity analysis, disputed items and agreement
per guideline version. Pure NumPy/SciPy, no Django. This module is the one callers import; the
work is in four modules, one concern each:

- :mod:`annotation.quality_hlp` — accuracy with Wilson intervals, agreement and speed per labeler;
  human-level performance (HLP) per project, slice and class.
- :mod:`annotation.quality_ambiguity` — confused class pairs and their suggested action; disputed items.
- :mod:`annotation.quality_versions` — agreement per guideline version.
- :mod:`annotation.quality_report` — :func:`compute_report`, the whole JSON-safe report.

Conventions (those of :mod:`annotation.agreement`, in their sparse form):

- Labels come as triples of int arrays of shape (L,): ``item_idx`` (0..N-1), ``labeler_idx``
  (0..M-1) and ``label`` (class index 0..K-1), one entry per *current* label, at most one per
  (item, labeler) pair. Per-label attributes (``unsure``, ``duration_ms``, ``version``) are
  arrays of shape (L,) aligned with them.
- ``truth`` is a float array of shape (N,): the ground-truth class of each item, NaN where there
  is none. Ground truth is decided by the caller (Concord: gold, else an SME's resolution).
- ``ambiguity`` is a bool array of shape (K,): True for the "can't tell / borderline" classes.
- Shares and rates that are undefined (nothing to score, no pair, no timed label) are NaN, never a
  division warning. :func:`compute_report` turns them into ``None`` in its JSON-safe output.

Definitions used throughout:

- **accuracy** of a set of labels: the share of them, among labels on items with ground truth,
  that equal the item's truth. A label of an ambiguity class never equals the truth of a real
  class, so it counts as a miss (a model has to choose); the ambiguity share is reported beside.
- **pair**: two different labelers' labels on the same item; an item with n labels holds
  n (n - 1) / 2 pairs. **Pairwise agreement** is the share of pairs with the same label.
- **reference class** of an item, used to group labels "per class": its ground truth where there
  is one, else the majority vote of its labels (ties broken with ``random_state``).
"""

from .quality_ambiguity import (
    BORDERLINE_MIN_UNCERTAIN,
    MERGE_MIN_RATE,
    MIN_PAIR_DISAGREEMENTS,
    MIN_PAIR_RATE,
    confused_pairs,
    disputed_items,
)
from .quality_hlp import (
    WILSON_Z_95,
    group_quality,
    label_entropy,
    labeler_accuracy,
    labeler_agreement,
    labeler_speed,
    project_hlp,
    reference_classes,
    wilson_interval,
)
from .quality_report import HLP_LABELS, QualityInput, ReportSettings, compute_report, json_safe
from .quality_versions import agreement_by_version

__all__ = [
    "BORDERLINE_MIN_UNCERTAIN",
    "HLP_LABELS",
    "MERGE_MIN_RATE",
    "MIN_PAIR_DISAGREEMENTS",
    "MIN_PAIR_RATE",
    "WILSON_Z_95",
    "QualityInput",
    "ReportSettings",
    "agreement_by_version",
    "compute_report",
    "confused_pairs",
    "disputed_items",
    "group_quality",
    "json_safe",
    "label_entropy",
    "labeler_accuracy",
    "labeler_agreement",
    "labeler_speed",
    "project_hlp",
    "reference_classes",
    "wilson_interval",
]
