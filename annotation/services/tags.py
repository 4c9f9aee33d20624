"""Tags: create, edit and delete a project's tags; add and remove them on items, one at a time or
in bulk (a list of ids, or every item matching the review queue's or the item browser's filters).

Only the project's SMEs and MLEs (superusers act as MLEs) tag: a labeler could read a hint at the
answer from a tag, so to everyone else the tags do not exist (NotFound, which the API and pages
answer with 404).

Idempotent and recorded: adding a tag an item already has, or removing one it lacks, writes
nothing; every real change writes one ItemTag row (or deletes it) and one TagEvent (who, when).
Concurrent writers of the same tag are serialised on the tag's row (SELECT ... FOR UPDATE), so
two SMEs adding the same tag to the same item at once leave one ItemTag and one "added" event;
the unique (tag, item) constraint is the backstop. Each call is one transaction: a bad item id
anywhere in a bulk request writes nothing.

Tags are slices of the quality report (annotation.tag_slices), so a change queues its refresh.
"""

from __future__ import annotations

import re

from django.db import IntegrityError, transaction
from django.db.models import Count

from config import queueing

from ..access import STAFF_ROLES, acting_user, role_in
from ..errors import DomainError, NotFound
from ..models import Item, ItemTag, Tag, TagEvent
from ..text_rules import control_character_problem
from . import adjudication_queue, item_filters
from .quality import queue_quality_refresh_soon

MAX_NAME = Tag._meta.get_field("name").max_length
MAX_DESCRIPTION = 2000
MAX_BULK_ITEMS = 50_000
DEFAULT_COLOUR = "#6b7280"
# Colours given to new tags in turn (readable on white and dark backgrounds), unless one is chosen.
PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#db2777", "#0891b2", "#65a30d")
_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
UNSET = object()
BULK_SOURCES = ("queue", "browser")


def can_tag(user, project) -> bool:
    return role_in(user, project) in STAFF_ROLES


def _require_tagger(project, user):
    """SMEs and MLEs only; to anyone else tags do not exist."""
    if not can_tag(user, project):
        raise NotFound("there are no tags here", "tag")


def clean_name(name) -> str:
    """A tag name as stored: trimmed, inner whitespace collapsed; DomainError naming `name`."""
    if not isinstance(name, str):
        raise DomainError("the tag name must be text", "name")
    name = " ".join(name.split())
    if not name:
        raise DomainError("the tag name is empty", "name")
    if len(name) > MAX_NAME:
        raise DomainError(f"the tag name is longer than {MAX_NAME} characters", "name")
    # "=" would split the slice "tag:<name>=yes" in the wrong place.
    if "=" in name:
        raise DomainError("a tag name may not hold '='", "name")
    problem = control_character_problem(name)
    if problem:
        raise DomainError(f"the tag name {problem}", "name")
    return name


def clean_colour(colour) -> str:
    if not isinstance(colour, str) or not _COLOUR.fullmatch(colour.strip()):
        raise DomainError("the colour must look like #rrggbb, e.g. #2563eb", "colour")
    return colour.strip().lower()


def clean_description(description) -> str:
    if description is None:
        return ""
    if not isinstance(description, str):
        raise DomainError("the description must be text", "description")
    if len(description) > MAX_DESCRIPTION:
        raise DomainError(f"the description is longer than {MAX_DESCRIPTION} characters", "description")
    problem = control_character_problem(description)
    if problem:
        raise DomainError(f"the description {problem}", "description")
    return description.strip()


def project_tags(project, user):
    """The project's tags by name, each with `n_items` (one query)."""
    _require_tagger(project, user)
    return list(Tag.objects.filter(project=project).annotate(n_items=Count("item_tags")).order_by("name", "pk"))


def get_tag(project, user, tag_id) -> Tag:
    _require_tagger(project, user)
    return _tag_by_id(project, tag_id)


def _tag_by_id(project, tag_id, *, lock=False) -> Tag:
    if isinstance(tag_id, bool) or not isinstance(tag_id, int | str) or not str(tag_id).isdigit():
        raise DomainError("tag must be a tag id", "tag")
    rows = Tag.objects.filter(project=project, pk=int(tag_id))
    tag = (rows.select_for_update() if lock else rows).first()
    if tag is None:
        raise DomainError(f"there is no tag {tag_id} in this project", "tag")
    return tag


def _name_taken(project, name, exclude=None) -> bool:
    rows = Tag.objects.filter(project=project, name__iexact=name)
    return rows.exclude(pk=exclude).exists() if exclude else rows.exists()


def create_tag(project, user, name, *, colour=None, description="") -> Tag:
    """A new tag; DomainError naming the field when the name is taken (case-insensitively) or bad."""
    _require_tagger(project, user)
    name = clean_name(name)
    colour = clean_colour(colour) if colour not in (None, "") else _next_colour(project)
    description = clean_description(description)
    if _name_taken(project, name):
        raise DomainError(f"there is already a tag named {name!r}", "name")
    try:
        with transaction.atomic():
            return Tag.objects.create(
                project=project, name=name, colour=colour, description=description, created_by=acting_user(user)
            )
    except IntegrityError:  # created by someone else meanwhile
        raise DomainError(f"there is already a tag named {name!r}", "name") from None


def _next_colour(project) -> str:
    return PALETTE[Tag.objects.filter(project=project).count() % len(PALETTE)]


def tag_named(project, user, name, *, create=True) -> tuple[Tag, bool]:
    """The tag of that name (any case), created when there is none and `create`: what typing a name
    in the tag box does. Returns (tag, created)."""
    _require_tagger(project, user)
    name = clean_name(name)
    tag = Tag.objects.filter(project=project, name__iexact=name).first()
    if tag is not None:
        return tag, False
    if not create:
        raise DomainError(f"there is no tag named {name!r} in this project", "name")
    try:
        return create_tag(project, user, name), True
    except DomainError:
        tag = Tag.objects.filter(project=project, name__iexact=name).first()
        if tag is None:
            raise
        return tag, False


def update_tag(project, user, tag_id, *, name=UNSET, colour=UNSET, description=UNSET) -> Tag:
    """Rename, recolour or describe a tag (only the fields given)."""
    _require_tagger(project, user)
    with transaction.atomic():
        tag = _tag_by_id(project, tag_id, lock=True)
        renamed = False
        if name is not UNSET:
            name = clean_name(name)
            if _name_taken(project, name, exclude=tag.pk):
                raise DomainError(f"there is already a tag named {name!r}", "name")
            renamed = name != tag.name
            tag.name = name
        if colour is not UNSET:
            tag.colour = clean_colour(colour)
        if description is not UNSET:
            tag.description = clean_description(description)
        tag.save()
    if renamed:
        # The slice key changes, but no fingerprint input does (labels, truth, tag events): force.
        refresh = queueing.task(queueing.REFRESH_QUALITY_REPORT)
        transaction.on_commit(lambda: refresh.apply_async(args=[project.pk], kwargs={"force": True}))
    return tag


def delete_tag(project, user, tag_id) -> dict:
    """Delete a tag with its item tags and their events; returns what went."""
    _require_tagger(project, user)
    with transaction.atomic():
        tag = _tag_by_id(project, tag_id, lock=True)
        n_items = tag.item_tags.count()
        name = tag.name
        tag.delete()
    if n_items:
        queue_quality_refresh_soon(project.pk)
    return {"name": name, "items": n_items}


def _item_ids(project, item_ids, field="items") -> list[int]:
    """Distinct item ids, checked to be the project's (one query); DomainError names the first
    bad one."""
    if not isinstance(item_ids, list | tuple):
        raise DomainError("give a list of item ids", field)
    if len(item_ids) > MAX_BULK_ITEMS:
        raise DomainError(f"at most {MAX_BULK_ITEMS:,} items at a time", field)
    ids = []
    for value in item_ids:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
            raise DomainError(f"{value!r} is not an item id", field)
        ids.append(value)
    ids = sorted(set(ids))
    found = set(Item.objects.filter(project=project, pk__in=ids).values_list("pk", flat=True))
    missing = [i for i in ids if i not in found]
    if missing:
        raise DomainError(f"there is no item {missing[0]} in this project", field)
    return ids


def _change(project, user, tag, item_ids, add: bool) -> dict:
    """Add (or remove) `tag` on the given items of the project; inside the caller's transaction,
    with the tag's row locked. Returns {"changed": n, "unchanged": n}."""
    actor = acting_user(user)
    have = set(ItemTag.objects.filter(tag=tag, item_id__in=item_ids).values_list("item_id", flat=True))
    if add:
        todo = [i for i in item_ids if i not in have]
        ItemTag.objects.bulk_create([ItemTag(tag=tag, item_id=i, added_by=actor) for i in todo], batch_size=5000)
    else:
        todo = [i for i in item_ids if i in have]
        ItemTag.objects.filter(tag=tag, item_id__in=todo).delete()
    action = TagEvent.Action.ADDED if add else TagEvent.Action.REMOVED
    TagEvent.objects.bulk_create(
        [TagEvent(tag=tag, item_id=i, actor=actor, action=action) for i in todo], batch_size=5000
    )
    if todo:
        queue_quality_refresh_soon(project.pk)  # after the commit, debounced
    return {"changed": len(todo), "unchanged": len(item_ids) - len(todo)}


def _resolve_tag(project, user, tag_id=None, name=None, *, create) -> tuple[Tag, bool]:
    if tag_id not in (None, ""):
        return _tag_by_id(project, tag_id), False
    if name is None:
        raise DomainError("give the tag's id (tag) or its name (name)", "tag")
    return tag_named(project, user, name, create=create)


def tag_items(project, user, item_ids, *, tag=None, name=None, add=True) -> dict:
    """Add (or remove) one tag on a list of item ids of the project. The tag is given by id
    (`tag`) or by `name`; adding by a new name creates the tag. Returns {"tag", "created",
    "changed", "unchanged"}."""
    _require_tagger(project, user)
    ids = _item_ids(project, item_ids)
    with transaction.atomic():
        found, created = _resolve_tag(project, user, tag, name, create=add)
        locked = _tag_by_id(project, found.pk, lock=True)
        counts = _change(project, user, locked, ids, add)
    return {"tag": locked, "created": created, **counts}


def tag_item(project, user, item_id, *, tag=None, name=None, add=True) -> dict:
    """One item; as `tag_items`, with the item named `item`."""
    _require_tagger(project, user)
    if isinstance(item_id, bool) or not isinstance(item_id, int):
        raise DomainError("item must be an item id", "item")
    if not Item.objects.filter(project=project, pk=item_id).exists():
        raise NotFound(f"there is no item {item_id} in this project", "item")
    return tag_items(project, user, [item_id], tag=tag, name=name, add=add)


def matching_item_ids(project, source, filters) -> list[int]:
    """The ids of the items a page shows under its filters: `source` "queue" (the review queue:
    reason, pair, slice; every page, not just the one shown) or "browser" (the item browser:
    split, slice, status, label, gold, source, tag, q). A bad filter: DomainError naming it."""
    if not isinstance(filters, dict):
        raise DomainError("filters must be an object of filter names and values", "filters")
    if source == "queue":
        allowed = ("reason", "pair", "slice")
    elif source == "browser":
        allowed = item_filters.FILTERS
    else:
        raise DomainError(f"source must be one of {', '.join(BULK_SOURCES)}", "source")
    unknown = sorted(set(filters) - set(allowed))
    if unknown:
        raise DomainError(
            f"{unknown[0]!r} is not a filter of the {source} (its filters: {', '.join(allowed)})", "filters"
        )
    for key, value in filters.items():
        if not isinstance(value, str):
            raise DomainError(f"the filter {key} must be text", "filters")
    if source == "queue":
        given = {k: v.strip() for k, v in filters.items() if v.strip()}
        return adjudication_queue.disagreement_queue(project, **given).ids
    items = item_filters.filter_items(item_filters.annotated_items(project), project, filters)
    return list(items.order_by("pk").values_list("pk", flat=True)[: MAX_BULK_ITEMS + 1])


def tag_matching(project, user, source, filters, *, tag=None, name=None, add=True) -> dict:
    """Add (or remove) a tag on every item matching a page's filters (see `matching_item_ids`)."""
    _require_tagger(project, user)
    ids = matching_item_ids(project, source, filters)
    if len(ids) > MAX_BULK_ITEMS:
        raise DomainError(f"more than {MAX_BULK_ITEMS:,} items match; narrow the filter", "filters")
    result = tag_items(project, user, ids, tag=tag, name=name, add=add)
    return {**result, "matched": len(ids)}


def item_tags(project, user, item_id) -> list[Tag]:
    """The item's tags by name (one query after the item check)."""
    _require_tagger(project, user)
    if not Item.objects.filter(project=project, pk=item_id).exists():
        raise NotFound(f"there is no item {item_id} in this project", "item")
    return list(Tag.objects.filter(item_tags__item_id=item_id).order_by("name", "pk"))


def tags_by_item(item_ids) -> dict[int, list[Tag]]:
    """{item id: [tags by name]} for a page of items (one query). The caller has checked the
    viewer may see tags."""
    out: dict[int, list[Tag]] = {}
    for it in ItemTag.objects.filter(item_id__in=list(item_ids)).select_related("tag").order_by("tag__name"):
        out.setdefault(it.item_id, []).append(it.tag)
    return out


def tag_history(item) -> list[dict]:
    """The item's tag events, oldest first, in the shape of the item page's history lines."""
    rows = TagEvent.objects.filter(item=item).select_related("tag", "actor").order_by("created_at", "pk")
    return [
        {
            "kind": f"tag_{e.action}",
            "what": f"Tag {e.tag.name} {'added' if e.action == TagEvent.Action.ADDED else 'removed'}",
            "labels": [],
            "by": e.actor.get_username() if e.actor else None,
            "at": e.created_at,
            "undone_at": None,
            "undone_by": None,
            "event": None,
            "tag": e.tag,
        }
        for e in rows
    ]
