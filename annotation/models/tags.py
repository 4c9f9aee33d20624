"""Tags: what SMEs and MLEs see in items while reviewing (blurry, dark background, car noise),
named per project. A tag is a slice wherever slices are used (HLP, the model's per-slice accuracy,
calibration, TFLite parity, the "where to work next" table). Labelers never see tags: they could
hint at the answer."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower, Now

from .project import Item, Project

# A tag is the slice key "tag:<name>" with the one value "yes" (an item has it or not), so every
# place that reads slices from item metadata reads tags the same way (annotation.tag_slices).
TAG_SLICE_PREFIX = "tag:"
TAG_SLICE_VALUE = "yes"


class Tag(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=60)
    colour = models.CharField(max_length=7, default="#6b7280", help_text="#rrggbb")
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["project", "name"]
        constraints = [
            models.UniqueConstraint(Lower("name"), "project", name="tag_name_unique_in_project"),
            models.CheckConstraint(condition=Q(colour__regex=r"^#[0-9a-fA-F]{6}$"), name="tag_colour_hex"),
            models.CheckConstraint(condition=~Q(name=""), name="tag_name_not_empty"),
        ]

    def __str__(self):
        return self.name

    @property
    def slice_key(self) -> str:
        return f"{TAG_SLICE_PREFIX}{self.name}"


class ItemTag(models.Model):
    """An item carries a tag (the current state; `TagEvent` keeps who added or removed it, when)."""

    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="item_tags")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="item_tags")
    added_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tag", "item"], name="itemtag_once")]
        indexes = [models.Index(fields=["item"], name="itemtag_item")]

    def __str__(self):
        return f"{self.tag} on {self.item}"


class TagEvent(models.Model):
    """A tag added to or removed from an item: who, when."""

    class Action(models.TextChoices):
        ADDED = "added", "Added"
        REMOVED = "removed", "Removed"

    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="events")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="tag_events")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    action = models.CharField(max_length=7, choices=Action.choices)
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["item", "created_at", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(action__in=["added", "removed"]), name="tagevent_action_valid")
        ]

    def __str__(self):
        return f"{self.tag} {self.action} on {self.item}"
