from django.conf import settings
from django.urls import reverse
from rest_framework import serializers

from ..crowd_parse import parse_delimiter
from ..models import DataKind, ImportBatch, Item, ItemPrediction, LabelClass, Project, Role, TaskType
from ..text_rules import MAX_INT32


class LabelClassSerializer(serializers.ModelSerializer):
    class Meta:
        model = LabelClass
        fields = ["id", "name", "shortcut", "is_ambiguity", "order", "is_active", "merged_into"]


class ProjectSerializer(serializers.ModelSerializer):
    classes = LabelClassSerializer(source="label_classes", many=True, read_only=True)
    role = serializers.CharField(read_only=True, allow_null=True, help_text="Your role in the project.")
    item_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Project
        fields = [
            "id", "name", "slug", "description", "task_type", "data_kind", "overlap", "consistency_fraction",
            "train_fraction", "dev_fraction", "test_fraction", "seed", "created_at", "classes", "role", "item_count",
        ]  # fmt: skip


class ProjectCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    slug = serializers.SlugField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    data_kind = serializers.ChoiceField(choices=DataKind.choices)
    task_type = serializers.ChoiceField(choices=TaskType.choices, default=TaskType.SINGLE_LABEL)
    classes = serializers.ListField(child=serializers.CharField(max_length=100), min_length=1)
    ambiguity_classes = serializers.ListField(child=serializers.CharField(max_length=100), default=list)
    overlap = serializers.IntegerField(min_value=1, max_value=50, default=1)
    consistency_fraction = serializers.FloatField(min_value=0, max_value=1, default=0)
    train_fraction = serializers.FloatField(min_value=0, max_value=1, default=0.8)
    dev_fraction = serializers.FloatField(min_value=0, max_value=1, default=0.1)
    test_fraction = serializers.FloatField(min_value=0, max_value=1, default=0.1)
    seed = serializers.IntegerField(min_value=0, max_value=MAX_INT32, default=0)  # an `integer` column
    # Share of next-item answers that serve a gold item; unset: CONCORD_LABELING["GOLD_RATE"].
    gold_rate = serializers.FloatField(min_value=0, max_value=1, required=False, allow_null=True)


class ImportBatchSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = ImportBatch
        fields = [
            "id", "kind", "source_name", "created_by", "created_at", "status", "created_count", "skipped_count",
            "rejected_count", "errors", "summary",
        ]  # fmt: skip


class ImportUploadSerializer(serializers.Serializer):
    file = serializers.FileField(
        help_text="Image projects: a .zip of PNG/JPEG (optional manifest.csv). Text projects: .csv or .jsonl."
    )

    def validate_file(self, upload):
        limit = settings.CONCORD_IMPORT["MAX_UPLOAD_BYTES"]
        if upload.size == 0:
            raise serializers.ValidationError(f"{upload.name} is empty.")
        if upload.size > limit:
            raise serializers.ValidationError(f"{upload.name} is {upload.size:,} bytes; the limit is {limit:,}.")
        return upload


def _checked_upload(upload):
    limit = settings.CONCORD_IMPORT["MAX_UPLOAD_BYTES"]
    if upload.size == 0:
        raise serializers.ValidationError(f"{upload.name} is empty.")
    if upload.size > limit:
        raise serializers.ValidationError(f"{upload.name} is {upload.size:,} bytes; the limit is {limit:,}.")
    return upload


class LabelStudioUploadSerializer(serializers.Serializer):
    file = serializers.FileField(
        help_text="A Label Studio JSON export (.json), or a .zip holding it and the images its tasks name."
    )
    create_classes = serializers.BooleanField(default=False, help_text="Add label names the project lacks.")

    def validate_file(self, upload):
        return _checked_upload(upload)


ANNOTATION_FORMATS = ("csv", "jsonl", "labelstudio")


class AnnotationUploadSerializer(serializers.Serializer):
    """Existing annotations and gold: delimited rows (as the import_annotations command reads them),
    Concord JSONL, or Label Studio JSON."""

    file = serializers.FileField(help_text="The annotations: .csv/.tsv rows, .jsonl items, or Label Studio .json.")
    format = serializers.ChoiceField(
        choices=ANNOTATION_FORMATS, required=False, help_text="Default: from the file's extension (else csv)."
    )
    truth = serializers.FileField(required=False, help_text="csv only: (item, label) rows loaded as gold.")
    columns = serializers.CharField(
        required=False, help_text="csv: the header's item, labeler and label columns, e.g. question,worker,answer."
    )
    truth_columns = serializers.CharField(required=False, help_text="csv: the truth file's item and label columns.")
    has_header = serializers.BooleanField(default=True, help_text="csv: without a header the first columns are read.")
    delimiter = serializers.CharField(default=",", max_length=10, help_text="csv: one character, or TAB.")
    create_classes = serializers.BooleanField(default=False, help_text="Add label names the project lacks.")

    def validate_file(self, upload):
        return _checked_upload(upload)

    def validate_truth(self, upload):
        return _checked_upload(upload)

    def validate_delimiter(self, value):
        try:
            return parse_delimiter(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from exc

    @staticmethod
    def _columns(value, count, name):
        names = [n.strip() for n in value.split(",")]
        if len(names) != count or not all(names):
            raise serializers.ValidationError({name: [f"takes {count} comma-separated column names, got {value!r}"]})
        return names

    def validate(self, data):
        if "format" not in data:
            suffix = data["file"].name.rsplit(".", 1)[-1].lower() if "." in data["file"].name else ""
            data["format"] = {"json": "labelstudio", "jsonl": "jsonl", "ndjson": "jsonl"}.get(suffix, "csv")
        if data["format"] != "csv":
            extra = [f for f in ("truth", "columns", "truth_columns") if f in data]
            if extra:
                raise serializers.ValidationError({extra[0]: [f"only for csv files, not {data['format']}"]})
            return data
        # Naming the columns is required with a header: guessing them could import the wrong ones.
        if data["has_header"] and "columns" not in data:
            raise serializers.ValidationError({"columns": ["name the file's item, labeler and label columns"]})
        if data["has_header"] and "truth" in data and "truth_columns" not in data:
            raise serializers.ValidationError({"truth_columns": ["name the truth file's item and label columns"]})
        if "columns" in data:
            data["columns"] = self._columns(data["columns"], 3, "columns")
        if "truth_columns" in data:
            data["truth_columns"] = self._columns(data["truth_columns"], 2, "truth_columns")
        return data


class ItemPredictionSerializer(serializers.ModelSerializer):
    external_id = serializers.CharField(source="item.external_id", read_only=True)
    label = serializers.CharField(source="label_class.name", read_only=True)

    class Meta:
        model = ItemPrediction
        fields = ["id", "item", "external_id", "source", "label", "score", "import_batch", "created_at"]


class ItemSerializer(serializers.ModelSerializer):
    image = serializers.SerializerMethodField(help_text="URL of the image (members only).")
    thumbnail = serializers.SerializerMethodField(help_text="URL of a small PNG preview (members only).")
    gold = serializers.SerializerMethodField(help_text="Gold class names, if the item has gold.")

    class Meta:
        model = Item
        fields = [
            "id", "external_id", "split", "in_consistency_sample", "metadata", "text", "image", "thumbnail",
            "width", "height", "gold", "created_at",
        ]  # fmt: skip

    def _file_url(self, item, kind):
        if not getattr(item, kind):
            return None
        return self.context["request"].build_absolute_uri(reverse("item-file", args=[item.pk, kind]))

    def get_image(self, item) -> str | None:
        return self._file_url(item, "image")

    def get_thumbnail(self, item) -> str | None:
        return self._file_url(item, "thumbnail")

    def get_gold(self, item) -> list[str]:
        gold = getattr(item, "gold", None)
        return [c.name for c in gold.labels.all()] if gold else []


class MemberSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices)
    password = serializers.CharField(
        write_only=True, required=False, allow_blank=False, help_text="Only to create a new account."
    )
