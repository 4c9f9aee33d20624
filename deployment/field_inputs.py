"""Sampled inputs become items of the project (source "field"), stored like imported images.

The files are written first, under the same content-addressed names an import uses; the items
are written by the caller's transaction. If that transaction fails, `Stored.discard()` removes the
files this call wrote (a file that was already there may belong to a committed item and stays).
"""

import hashlib

from annotation.models import DataKind, Item
from annotation.services.item_import import Entry, _check_image, _place, _remove_files, _store_image

from .telemetry_records import Refused

FIELD_SOURCE = "field"


class Stored:
    """Inputs checked and written to storage, ready to become items: {sha256: Item (unsaved)}."""

    def __init__(self):
        self.items = {}
        self.written = []

    def discard(self):
        _remove_files(self.written)
        self.written = []


def prepare(project, data: bytes, stored: Stored, *, metadata: dict) -> str:
    """Check one input image and store its files; returns its SHA-256. Raises Refused("input", ...)."""
    if project.data_kind != DataKind.IMAGE:
        raise Refused("input", "this project labels texts; inputs are images")
    sha = hashlib.sha256(data).hexdigest()
    if sha in stored.items:
        return sha
    name = "input.png" if data.startswith(b"\x89PNG") else "input.jpg"
    checked = _check_image(Entry(name, len(data), lambda: data))
    if isinstance(checked, str):
        raise Refused("input", checked)
    _, image = checked
    item = Item(
        project=project,
        external_id=f"field-{sha[:24]}",
        sha256=sha,
        width=image.width,
        height=image.height,
        metadata=metadata,
        source_name=FIELD_SOURCE,
    )
    item.image, item.thumbnail = _store_image(project, sha, data, image, name, stored.written)
    for key, value in _place(project, item).items():
        setattr(item, key, value)
    stored.items[sha] = item
    return sha


def save(project, stored: Stored) -> dict:
    """Write the items (inside the caller's transaction); {sha256: item id}. An input the project
    already holds (same content) is that item: the device's record points at it."""
    if not stored.items:
        return {}
    Item.objects.bulk_create(stored.items.values(), ignore_conflicts=True)
    return dict(Item.objects.filter(project=project, sha256__in=list(stored.items)).values_list("sha256", "pk"))
