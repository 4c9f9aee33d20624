"""A cycle's pool restriction: "label more like this" for one row of the model's "where to work
next" table (training/worknext.py).

Stored on :attr:`Cycle.pool_restriction` as one of

- ``{"kind": "slice", "key": "noise", "value": "car"}``: the unlabeled items whose metadata value
  for ``key``, read as text the way the slice tables name it, is ``value``;
- ``{"kind": "tag", "tag": "blurry"}``: the unlabeled items carrying the tag;
- ``{"kind": "tag", "tag": "blurry", "nearest": k}``: the k unlabeled items nearest to the tagged
  items (labeled or not) in the cycle model's embedding (the trainer's ``embed``, reduced as
  for diversity sampling). Unlabeled tagged items are at distance 0, so they come first.

A slice or tag restriction is a database filter on the pool (services.pool_items); "nearest" is
applied in the scoring step, after the pool and the tagged items are embedded.
"""

from __future__ import annotations

import numpy as np
from django.db.models import Exists, OuterRef, TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from annotation.errors import DomainError
from annotation.models import Item, ItemTag, Tag
from annotation.tag_slices import is_tag_slice, tag_name

FIELD = "pool_restriction"
MAX_NEAREST = 100_000
NEAREST_PER_BATCH = 5  # the default k: five candidates for every item the batch takes


class RestrictionError(DomainError):
    """A pool restriction the project cannot honour (unknown slice or tag, empty pool)."""


def _key_text(key):
    # The key as data, never a lookup path; cast: SQLite reads a key transform's right side as JSON.
    return Cast(KeyTextTransform(key, "metadata"), TextField())


def check(project, raw, *, batch_size: int, unlabeled) -> dict | None:
    """The stored form of ``raw`` (a dict, or None for no restriction), or RestrictionError naming
    the field. ``unlabeled`` is the project's unlabeled train pool (a queryset of items) the
    restricted pool must not leave empty."""
    if raw in (None, {}, ""):
        return None
    if not isinstance(raw, dict):
        raise RestrictionError('must be an object such as {"kind": "tag", "tag": "blurry"}', FIELD)
    kind = raw.get("kind")
    if kind == "tag" or (kind is None and raw.get("tag")):
        out = _check_tag(project, raw, batch_size)
    elif kind == "slice" or (kind is None and raw.get("key")):
        out = _check_slice(project, raw)
    else:
        raise RestrictionError('kind must be "slice" or "tag"', f"{FIELD}.kind")
    extra = sorted(set(raw) - {"kind", "key", "value", "tag", "nearest"})
    if extra:
        raise RestrictionError(f"unknown option {extra[0]!r}", f"{FIELD}.{extra[0]}")
    if out.get("nearest") is None and not filter_items(unlabeled, project, out).exists():
        raise RestrictionError(f"no unlabeled train item is in {describe(out)}: nothing to label", FIELD)
    if out.get("nearest") is not None and not unlabeled.exists():
        raise RestrictionError("the project has no unlabeled train item to choose from", FIELD)
    return out


def _check_slice(project, raw):
    key, value = raw.get("key"), raw.get("value")
    if not isinstance(key, str) or not key.strip():
        raise RestrictionError("the slice's key is required (e.g. noise)", f"{FIELD}.key")
    if is_tag_slice(key):  # a row of the table may name a tag by its slice key "tag:<name>"
        return _check_tag(project, {"tag": tag_name(key), "nearest": raw.get("nearest")}, 1)
    if raw.get("nearest") is not None:
        raise RestrictionError("nearest is for a tag only", f"{FIELD}.nearest")
    if value is None or isinstance(value, dict | list):
        raise RestrictionError(f"the value of slice {key!r} is required (e.g. car)", f"{FIELD}.value")
    value = str(value).lower() if isinstance(value, bool) else str(value)
    if not Item.objects.filter(project=project).alias(_v=_key_text(key)).filter(_v=value).exists():
        raise RestrictionError(f"no item of this project has the slice {key}={value}", f"{FIELD}.key")
    return {"kind": "slice", "key": key, "value": value}


def _check_tag(project, raw, batch_size):
    name = raw.get("tag")
    if not isinstance(name, str) or not name.strip():
        raise RestrictionError("the tag's name is required", f"{FIELD}.tag")
    tag = Tag.objects.filter(project=project, name__iexact=name.strip()).first()
    if tag is None:
        raise RestrictionError(f"this project has no tag named {name.strip()!r}", f"{FIELD}.tag")
    out = {"kind": "tag", "tag": tag.name}
    nearest = raw.get("nearest")
    if nearest is not None:
        if nearest is True:
            nearest = NEAREST_PER_BATCH * batch_size
        if isinstance(nearest, bool) or not isinstance(nearest, int) or not 1 <= nearest <= MAX_NEAREST:
            raise RestrictionError(
                f"nearest must be true or a whole number from 1 to {MAX_NEAREST}", f"{FIELD}.nearest"
            )
        if not tag.item_tags.exists():
            raise RestrictionError(f"no item carries the tag {tag.name!r}: nothing to be near", f"{FIELD}.tag")
        out["nearest"] = nearest
    return out


def filter_items(items, project, restriction):
    """``items`` (an Item queryset) cut to the restriction; unchanged for none or for "nearest"
    (which needs the embedding: see :func:`nearest_rows`)."""
    if not restriction or restriction.get("nearest") is not None:
        return items
    if restriction["kind"] == "tag":
        tagged = ItemTag.objects.filter(item=OuterRef("pk"), tag__project=project, tag__name=restriction["tag"])
        return items.filter(Exists(tagged))
    return items.alias(_slice_value=_key_text(restriction["key"])).filter(_slice_value=restriction["value"])


def anchor_ids(project, restriction) -> np.ndarray:
    """Ids of the tagged items a "nearest" restriction measures from (empty otherwise)."""
    if not restriction or restriction.get("nearest") is None:
        return np.zeros(0, dtype=np.int64)
    ids = ItemTag.objects.filter(tag__project=project, tag__name=restriction["tag"]).values_list("item_id", flat=True)
    return np.array(sorted(ids), dtype=np.int64)


def nearest_rows(pool_features, anchor_features, k: int) -> np.ndarray:
    """Rows of ``pool_features`` (float (N, D)) whose distance to the nearest row of
    ``anchor_features`` (float (A, D), A >= 1) is among the k smallest (Euclidean; ties: lower row
    first), in increasing row order. Distances are computed a block of pool rows at a time."""
    pool = np.asarray(pool_features, dtype=np.float64)
    anchors = np.asarray(anchor_features, dtype=np.float64)
    if pool.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    if anchors.ndim != 2 or anchors.shape[0] == 0 or anchors.shape[1] != pool.shape[1]:
        raise ValueError("anchor_features must be (A >= 1, D) with the pool's D")
    best = np.empty(pool.shape[0])
    a2 = (anchors**2).sum(axis=1)
    for start in range(0, pool.shape[0], 2048):
        block = pool[start : start + 2048]
        d2 = (block**2).sum(axis=1)[:, None] - 2 * block @ anchors.T + a2[None, :]
        best[start : start + len(block)] = np.maximum(d2, 0).min(axis=1)
    keep = np.argsort(best, kind="stable")[: int(k)]
    return np.sort(keep).astype(np.int64)


def describe(restriction) -> str:
    """How the page names the restriction: "noise=car", "tag blurry", "the 60 items nearest to tag blurry"."""
    if not restriction:
        return "the whole pool"
    if restriction.get("kind") == "tag":
        if restriction.get("nearest") is not None:
            return f"the {restriction['nearest']} unlabeled items nearest to tag {restriction['tag']}"
        return f"tag {restriction['tag']}"
    return f"{restriction.get('key')}={restriction.get('value')}"
