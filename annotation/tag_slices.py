"""Tags read as slices: an item's tags as metadata entries ``{"tag:<name>": "yes"}``, merged into
the metadata that slice computations already read (quality report, model evaluation, TFLite
parity, the "where to work next" table)."""

from __future__ import annotations

from .models.tags import TAG_SLICE_PREFIX, TAG_SLICE_VALUE, ItemTag


def is_tag_slice(key: str) -> bool:
    return str(key).startswith(TAG_SLICE_PREFIX)


def tag_name(key: str) -> str:
    """The tag's name from its slice key ("tag:blurry" -> "blurry")."""
    return str(key)[len(TAG_SLICE_PREFIX) :]


def tag_metadata(project_id: int) -> dict[int, dict[str, str]]:
    """{item_id: {"tag:<name>": "yes", ...}} for every tagged item of a project (one query)."""
    out: dict[int, dict[str, str]] = {}
    rows = ItemTag.objects.filter(tag__project_id=project_id).values_list("item_id", "tag__name")
    for item_id, name in rows.iterator(chunk_size=10000):
        out.setdefault(item_id, {})[f"{TAG_SLICE_PREFIX}{name}"] = TAG_SLICE_VALUE
    return out


def with_tags(item_ids, metadata_rows, tags: dict[int, dict[str, str]]) -> list[dict]:
    """Each item's metadata with its tags merged in (a new dict where the item has tags)."""
    out = []
    for item_id, meta in zip(item_ids, metadata_rows, strict=True):
        meta = meta if isinstance(meta, dict) else {}
        extra = tags.get(int(item_id))
        out.append({**meta, **extra} if extra else meta)
    return out
