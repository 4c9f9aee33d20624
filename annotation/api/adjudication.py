"""The adjudication API (SMEs and MLEs): disagreement queue, resolutions, send-back, guideline
notes, class operations and guidelines.

Labelers and non-members get 404 on every endpoint here (they are not told the endpoint applies
to them). DomainError → 400 naming the field, Conflict → 409, NotFound → 404; nothing is written
on any of them.

Consequential class and guideline operations are confirmed on the pages (a dialog stating the
consequence); the API does not ask for a `confirm` flag: a script's request is already
deliberate, and the merge preview endpoint states the consequence for a script that wants it.
"""

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from ..access import STAFF_ROLES, project_for
from ..errors import DomainError
from ..models import LabelClass
from ..services import adjudication, guidelines
from ..services.quality import build_report, latest_report
from .errors import api_error

QUEUE_PAGE = 100
MAX_QUEUE_PAGE = 1000


def staff_project(user, project_id):
    """The project for its SMEs and MLEs; 404 for everyone else, labelers included."""
    return project_for(user, project_id, roles=STAFF_ROLES)


def _valid(serializer_class, request):
    """The request body validated by `serializer_class`; 400 naming each bad field."""
    if not isinstance(request.data, dict):
        raise ValidationError({"non_field_errors": ["send a JSON object"]})
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except DomainError as exc:
        raise api_error(exc) from exc


class StrictBooleanField(serializers.BooleanField):
    """true or false only: DRF's BooleanField also takes "yes", "on", 1, ..., which a JSON client
    sending the wrong type should hear about."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


@extend_schema_field(OpenApiTypes.STR)
class PlainTextField(serializers.Field):
    """Text as sent (not trimmed); null or absent is "". Anything else: "must be text"."""

    default_error_messages = {"invalid": "must be text"}

    def __init__(self, **kwargs):
        super().__init__(required=False, allow_null=True, default="", **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return data

    def to_representation(self, value):
        return value


class AsSentField(serializers.Field):
    """A value handed to the service as sent, null included: the service checks it and names the
    field in the words the API has always used. The schema (see the subclasses) says what to send."""

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        super().__init__(allow_null=True, **kwargs)

    def to_internal_value(self, data):
        return data

    def to_representation(self, value):
        return value


@extend_schema_field(OpenApiTypes.INT)
class IdAsSentField(AsSentField):
    pass


@extend_schema_field({"type": "array", "items": {"type": "integer"}})
class IdsAsSentField(AsSentField):
    pass


@extend_schema_field(OpenApiTypes.STR)
class TextAsSentField(AsSentField):
    pass


class QueueQuerySerializer(serializers.Serializer):
    reason = serializers.ChoiceField(choices=adjudication.REASONS, required=False, allow_blank=True)
    pair = serializers.CharField(
        required=False, allow_blank=True, help_text="Two class names: 3,8 or 3-8 or 3 8 or 3/8 or 3 vs 8."
    )
    slice = serializers.CharField(required=False, allow_blank=True, help_text="key=value, e.g. noise=car.")
    after = serializers.CharField(required=False, allow_blank=True, help_text="`next` of the previous page.")
    before = serializers.CharField(required=False, allow_blank=True, help_text="`previous` of the next page.")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=MAX_QUEUE_PAGE, default=QUEUE_PAGE)


class QueueRowSerializer(serializers.Serializer):
    item = serializers.IntegerField(source="item_id")
    external_id = serializers.CharField()
    reasons = serializers.ListField(child=serializers.CharField())
    entropy = serializers.FloatField()
    uncertainty = serializers.FloatField()
    labels = serializers.IntegerField(source="n_labels")
    class_counts = serializers.DictField(child=serializers.IntegerField())
    consensus = serializers.CharField(allow_null=True)
    confidence = serializers.FloatField(allow_null=True)
    consensus_method = serializers.CharField()
    metadata = serializers.DictField()
    review_reason = serializers.CharField()
    thumbnail = serializers.SerializerMethodField()
    snippet = serializers.CharField()

    def get_thumbnail(self, row) -> str | None:
        return reverse("item-file", args=[row.item_id, "thumbnail"]) if row.thumbnail else None


def row_json(row):
    return QueueRowSerializer(row).data


class QueuePageSerializer(serializers.Serializer):
    counts = serializers.DictField(child=serializers.IntegerField(), help_text="Items per reason.")
    count = serializers.IntegerField(help_text="Items in the filtered queue.")
    start = serializers.IntegerField(help_text="Position of the first row in the filtered queue.")
    consensus_method = serializers.CharField()
    next = serializers.CharField(allow_null=True, help_text="Pass as `after` for the next page.")
    previous = serializers.CharField(allow_null=True, help_text="Pass as `before` for the previous page.")
    results = QueueRowSerializer(many=True)


class ResolutionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    item = serializers.IntegerField()
    labels = serializers.ListField(child=serializers.CharField())
    is_ambiguous = serializers.BooleanField()
    note = serializers.CharField()
    decided_by = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    event = serializers.IntegerField(allow_null=True, help_text="Undo it at decisions/{event}/undo/.")
    undo_seconds = serializers.IntegerField()


class SentBackSerializer(serializers.Serializer):
    item = serializers.IntegerField()
    retired_annotations = serializers.IntegerField()
    event = serializers.IntegerField()
    undo_seconds = serializers.IntegerField()


class UndoneSerializer(serializers.Serializer):
    event = serializers.IntegerField()
    item = serializers.IntegerField()
    kind = serializers.CharField()
    undone_at = serializers.DateTimeField()


class DisagreementList(APIView):
    """GET: the disagreement queue, most disputed first, with counts per reason, a page at a time.

    Filters: `reason`, `pair` (two class names in any common spelling: 3,8 3-8 3 8 3/8 3 vs 8),
    `slice` (key=value). Keyset pages: `limit` rows (default 100, at most 1,000); `next` /
    `previous` are the cursors to pass as `after` / `before` for the next / previous page."""

    @extend_schema(parameters=[QueueQuerySerializer], responses=QueuePageSerializer)
    def get(self, request, project_id):
        project = staff_project(request.user, project_id)
        query = QueueQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        result = _call(
            adjudication.disagreement_queue,
            project,
            reason=params.get("reason") or None,
            pair=params.get("pair") or None,
            slice=params.get("slice") or None,
            after=params.get("after") or None,
            before=params.get("before") or None,
            limit=params["limit"],
        )
        return Response(
            {
                "counts": result.counts,
                "count": result.total,
                "start": result.start,
                "consensus_method": result.method,
                "next": result.next_cursor,
                "previous": result.prev_cursor,
                "results": [row_json(r) for r in result.rows],
            }
        )


def resolution_json(resolution):
    event = getattr(resolution, "event", None)
    return {
        "id": resolution.pk,
        "item": resolution.item_id,
        "labels": getattr(resolution, "label_names", None) or [c.name for c in resolution.labels.all()],
        "is_ambiguous": resolution.is_ambiguous,
        "note": resolution.note,
        "decided_by": resolution.decided_by.get_username() if resolution.decided_by else None,
        "created_at": resolution.created_at,
        "event": event.pk if event else None,
        "undo_seconds": adjudication.undo_window(),
    }


class ResolutionInputSerializer(serializers.Serializer):
    item = serializers.IntegerField(help_text="The item's id.")
    labels = serializers.ListField(child=serializers.CharField(max_length=100), required=False, default=list)
    ambiguous = StrictBooleanField(required=False, default=False)
    note = serializers.CharField(required=False, allow_blank=True, allow_null=True, trim_whitespace=False, default="")
    expected_current = serializers.IntegerField(
        required=False, allow_null=True, help_text="The resolution you saw (null: none); 409 when it moved on."
    )


class ResolutionCreate(APIView):
    """POST {item, labels: [names] | ambiguous: true, note?, expected_current?: id|null} → 201.
    `expected_current` is the resolution you saw; 409 when another SME decided meanwhile. The
    answer's `event` can be undone within `undo_seconds` (see DecisionUndo)."""

    @extend_schema(request=ResolutionInputSerializer, responses={201: ResolutionSerializer})
    def post(self, request, project_id):
        project = staff_project(request.user, project_id)
        data = _valid(ResolutionInputSerializer, request)
        kwargs = {"expected_current": data["expected_current"]} if "expected_current" in data else {}
        resolution = _call(
            adjudication.resolve,
            project,
            data["item"],
            request.user,
            labels=data["labels"],
            ambiguous=data["ambiguous"],
            note=data["note"] or "",
            **kwargs,
        )
        resolution.refresh_from_db(fields=["created_at"])
        return Response(resolution_json(resolution), status=status.HTTP_201_CREATED)


class ItemInputSerializer(serializers.Serializer):
    item = serializers.IntegerField(help_text="The item's id.")


class SendBack(APIView):
    """POST {item}: its labels stop counting and it is served for k fresh labels. The answer's
    `event` can be undone within `undo_seconds` while no new label has come in."""

    @extend_schema(request=ItemInputSerializer, responses=SentBackSerializer)
    def post(self, request, project_id):
        project = staff_project(request.user, project_id)
        data = _valid(ItemInputSerializer, request)
        event = _call(adjudication.send_back_decision, project, data["item"], request.user)
        return Response(
            {
                "item": data["item"],
                "retired_annotations": len(event.details["retired_annotations"]),
                "event": event.pk,
                "undo_seconds": adjudication.undo_window(),
            }
        )


class DecisionUndo(APIView):
    """POST (no body): undo your own resolve, ambiguous or send-back `pk` within `undo_seconds`.
    400 when too late, already undone or not yours; 409 when the item moved on (decided again,
    or labelled anew after a send-back)."""

    @extend_schema(request=None, responses=UndoneSerializer)
    def post(self, request, project_id, pk):
        project = staff_project(request.user, project_id)
        event = _call(adjudication.undo_decision, project, pk, request.user)
        return Response({"event": event.pk, "item": event.item_id, "kind": event.kind, "undone_at": event.undone_at})


class GuidelineNoteInputSerializer(serializers.Serializer):
    text = PlainTextField()
    item = IdAsSentField(help_text="The item the note is about, if any.")


class GuidelineNoteSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    draft_version = serializers.IntegerField()


class GuidelineNoteCreate(APIView):
    """POST {text, item?}: a note for the next guideline draft."""

    @extend_schema(request=GuidelineNoteInputSerializer, responses={201: GuidelineNoteSerializer})
    def post(self, request, project_id):
        project = staff_project(request.user, project_id)
        data = _valid(GuidelineNoteInputSerializer, request)
        note = _call(guidelines.add_note, project, request.user, text=data["text"] or "", item_id=data.get("item"))
        return Response({"id": note.pk, "draft_version": note.draft.version}, status=status.HTTP_201_CREATED)


class ClassSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    shortcut = serializers.CharField(allow_blank=True)
    is_ambiguity = serializers.BooleanField()
    is_active = serializers.BooleanField()
    merged_into = serializers.IntegerField(allow_null=True, help_text="The class it was merged into.")


class ClassCreatedSerializer(ClassSerializer):
    operation = serializers.IntegerField(help_text="The audit row of the change.")


class OperationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    operation = serializers.CharField()
    actor = serializers.CharField(allow_null=True)
    details = serializers.JSONField()
    before = serializers.JSONField()
    after = serializers.JSONField()


class ClassInputSerializer(serializers.Serializer):
    name = PlainTextField()
    is_ambiguity = StrictBooleanField(
        required=False,
        default=False,
        error_messages={"invalid": "must be true or false", "null": "must be true or false"},
    )


class RenameInputSerializer(serializers.Serializer):
    name = PlainTextField()


class MergeInputSerializer(serializers.Serializer):
    sources = IdsAsSentField(help_text="Ids of the classes to merge.")
    target = IdAsSentField(help_text="The id of the class they merge into; or give `new_target`.")
    new_target = TextAsSentField(help_text="The name of a new class they merge into.")


class MergePreviewSerializer(serializers.Serializer):
    sources = serializers.ListField(child=serializers.CharField())
    target = serializers.CharField()
    target_is_new = serializers.BooleanField()
    moves = serializers.DictField(child=serializers.IntegerField(), help_text="Labels that would move, per kind.")
    alpha_before = serializers.FloatField(allow_null=True)
    alpha_after = serializers.FloatField(allow_null=True)


def class_json(c):
    return {
        "id": c.pk,
        "name": c.name,
        "shortcut": c.shortcut,
        "is_ambiguity": c.is_ambiguity,
        "is_active": c.is_active,
        "merged_into": c.merged_into_id,
    }


def operation_json(op):
    return {
        "id": op.pk,
        "operation": op.operation,
        "actor": op.actor.get_username() if op.actor else None,
        "details": op.details,
        "before": op.before,
        "after": op.after,
    }


def _merge_args(data):
    return {"sources": data.get("sources"), "target": data.get("target"), "new_target": data.get("new_target")}


class ClassList(APIView):
    """GET: the project's classes (active and not). POST {name, is_ambiguity?}: add a class."""

    @extend_schema(responses=ClassSerializer(many=True))
    def get(self, request, project_id):
        project = staff_project(request.user, project_id)
        return Response([class_json(c) for c in LabelClass.objects.filter(project=project)])

    @extend_schema(request=ClassInputSerializer, responses={201: ClassCreatedSerializer})
    def post(self, request, project_id):
        project = staff_project(request.user, project_id)
        data = _valid(ClassInputSerializer, request)
        label_class, op = _call(
            adjudication.add_class,
            project,
            request.user,
            name=data["name"] or "",
            is_ambiguity=data["is_ambiguity"],
        )
        return Response({**class_json(label_class), "operation": op.pk}, status=status.HTTP_201_CREATED)


class ClassMerge(APIView):
    """POST {sources: [ids], target: id | new_target: name}: merge, audited."""

    @extend_schema(request=MergeInputSerializer, responses={201: OperationSerializer})
    def post(self, request, project_id):
        project = staff_project(request.user, project_id)
        op = _call(adjudication.merge, project, request.user, **_merge_args(_valid(MergeInputSerializer, request)))
        return Response(operation_json(op), status=status.HTTP_201_CREATED)


class ClassMergePreview(APIView):
    """POST {sources, target | new_target}: what the merge would change; writes nothing."""

    @extend_schema(request=MergeInputSerializer, responses=MergePreviewSerializer)
    def post(self, request, project_id):
        project = staff_project(request.user, project_id)
        return Response(
            _call(adjudication.merge_preview, project, **_merge_args(_valid(MergeInputSerializer, request)))
        )


class ClassRename(APIView):
    @extend_schema(request=RenameInputSerializer, responses=OperationSerializer)
    def post(self, request, project_id, class_id):
        project = staff_project(request.user, project_id)
        name = _valid(RenameInputSerializer, request)["name"] or ""
        op = _call(adjudication.rename_class, project, request.user, class_id=class_id, name=name)
        return Response(operation_json(op))


class ClassDeactivate(APIView):
    @extend_schema(request=None, responses=OperationSerializer)
    def post(self, request, project_id, class_id):
        project = staff_project(request.user, project_id)
        op = _call(adjudication.deactivate_class, project, request.user, class_id=class_id)
        return Response(operation_json(op))


class GuidelineVersionSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    published_at = serializers.DateTimeField()
    author = serializers.CharField(allow_null=True)
    labels = serializers.IntegerField(help_text="Labels made under this version.")
    krippendorff_alpha = serializers.FloatField(allow_null=True)
    percent_agreement = serializers.FloatField(allow_null=True)
    text = serializers.CharField()


class GuidelineDraftSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    text = serializers.CharField(allow_blank=True)


class GuidelinesSerializer(serializers.Serializer):
    versions = GuidelineVersionSerializer(many=True, help_text="Published versions, newest first.")
    draft = GuidelineDraftSerializer(allow_null=True)


class GuidelineDraftInputSerializer(serializers.Serializer):
    text = TextAsSentField(required=True, error_messages={"required": "this field is required"})


class GuidelinePublishInputSerializer(serializers.Serializer):
    text = TextAsSentField(help_text="Publish this text; without it, the draft as saved.")


class GuidelinePublishedSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    published_at = serializers.DateTimeField()


def guideline_payload(project):
    report = latest_report(project)
    data = report.data if report is not None else build_report(project)
    rows = guidelines.versions(project, data)
    current_draft = guidelines.draft(project)
    return {
        "versions": [
            {k: v for k, v in row.items() if k != "guideline"} | {"text": row["guideline"].text} for row in rows
        ],
        "draft": (
            {"version": current_draft.version, "text": current_draft.text} if current_draft is not None else None
        ),
    }


class GuidelineList(APIView):
    """GET: published versions (with agreement under each) and the draft. POST {text}: save the draft."""

    @extend_schema(responses=GuidelinesSerializer)
    def get(self, request, project_id):
        project = staff_project(request.user, project_id)
        return Response(guideline_payload(project))

    @extend_schema(request=GuidelineDraftInputSerializer, responses={201: GuidelineDraftSerializer})
    def post(self, request, project_id):
        project = staff_project(request.user, project_id)
        data = _valid(GuidelineDraftInputSerializer, request)
        draft = _call(guidelines.save_draft, project, request.user, data["text"])
        return Response({"version": draft.version, "text": draft.text}, status=status.HTTP_201_CREATED)


class GuidelinePublish(APIView):
    """POST {text?}: publish the draft (with `text`, when given) as the new version."""

    @extend_schema(request=GuidelinePublishInputSerializer, responses={201: GuidelinePublishedSerializer})
    def post(self, request, project_id):
        project = staff_project(request.user, project_id)
        data = _valid(GuidelinePublishInputSerializer, request)
        g = _call(guidelines.publish, project, request.user, data.get("text"))
        return Response({"version": g.version, "published_at": g.published_at}, status=status.HTTP_201_CREATED)
