"""Shapes of the labeling API. What a labeler is served carries no label counts and no gold."""

from django.urls import reverse
from rest_framework import serializers

from ..models import Annotation
from ..services import labeling


class ServedItemSerializer(serializers.Serializer):
    """An item as a labeler sees it (from `labeling.Served`)."""

    id = serializers.IntegerField(source="item.id")
    kind = serializers.SerializerMethodField(help_text="'image' or 'text': how to show the item.")
    image = serializers.SerializerMethodField(help_text="URL of the image (image projects), else null.")
    width = serializers.IntegerField(source="item.width", allow_null=True)
    height = serializers.IntegerField(source="item.height", allow_null=True)
    text = serializers.CharField(source="item.text", help_text="The text to label (text projects), else empty.")
    metadata = serializers.SerializerMethodField(help_text="Metadata the labeler may see.")
    guideline_version = serializers.IntegerField(allow_null=True, help_text="The guideline in force.")
    lease_expires_at = serializers.DateTimeField(
        source="expires_at", help_text="The item is held for you until then; afterwards it may go to someone else."
    )

    def get_kind(self, served) -> str:
        return self.context["project"].data_kind

    def get_image(self, served) -> str | None:
        if not served.item.image:
            return None
        url = reverse("item-file", args=[served.item.pk, "image"])
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request is not None else url

    def get_metadata(self, served) -> dict:
        return labeling.visible_metadata(served.item.metadata)


class AnnotationInputSerializer(serializers.Serializer):
    item = serializers.IntegerField(min_value=1, help_text="The id of an item you were served.")
    labels = serializers.ListField(
        child=serializers.CharField(max_length=100),
        min_length=1,
        max_length=100,
        help_text="Class names; exactly one on a single-label project.",
    )
    unsure = serializers.BooleanField(default=False)
    note = serializers.CharField(
        allow_blank=True, default="", trim_whitespace=False, help_text="At most MAX_NOTE_CHARS characters."
    )
    duration_ms = serializers.IntegerField(
        min_value=0,
        max_value=labeling.MAX_DURATION_MS,
        required=False,
        allow_null=True,
        help_text="Time spent on the item, in milliseconds.",
    )
    client_id = serializers.UUIDField(
        help_text="A UUID the client makes per label: sending it again returns the first annotation (safe retry)."
    )


class SkipSerializer(serializers.Serializer):
    item = serializers.IntegerField(min_value=1, help_text="The id of an item you were served.")


class AnnotationSerializer(serializers.ModelSerializer):
    labeler = serializers.SlugRelatedField(slug_field="username", read_only=True)
    labels = serializers.SerializerMethodField(help_text="Class names.")
    guideline_version = serializers.SerializerMethodField(help_text="The guideline in force when labelled.")

    class Meta:
        model = Annotation
        fields = [
            "id", "item", "labeler", "labels", "unsure", "note", "duration_ms", "client_id", "source",
            "guideline_version", "is_current", "created_at",
        ]  # fmt: skip

    def get_labels(self, annotation) -> list[str]:
        names = getattr(annotation, "label_names", None)
        return names if names is not None else [c.name for c in annotation.labels.all()]

    def get_guideline_version(self, annotation) -> int | None:
        return getattr(annotation, "guideline_version", None)
