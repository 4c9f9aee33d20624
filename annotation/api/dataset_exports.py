"""Dataset exports of a project (SMEs and MLEs; labelers and non-members get 404).

GET  /api/v1/projects/{id}/dataset-exports/                 the project's exports, newest first
POST /api/v1/projects/{id}/dataset-exports/                 start one (201 done, 202 queued)
GET  /api/v1/projects/{id}/dataset-exports/{pk}/            status and progress
GET  /api/v1/projects/{id}/dataset-exports/{pk}/download/   the file, streamed
"""

from django.http import FileResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import export_writers as W
from ..access import STAFF_ROLES, project_for
from ..errors import DomainError
from ..models import DatasetExport, Split
from ..services import dataset_export as service
from .errors import ConflictError, api_error


class DatasetExportCreateSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=W.FORMATS, help_text="jsonl, csv, label_studio or parquet.")
    include_labels = serializers.BooleanField(
        required=False, help_text="Every labeler's current label, unsure flag and note."
    )
    include_history = serializers.BooleanField(
        required=False, help_text="Also the labels replaced by edits (implies include_labels)."
    )
    include_predictions = serializers.BooleanField(
        required=False, help_text="The promoted model's stored prediction, where it scored the item."
    )
    pseudonymize = serializers.BooleanField(
        required=False, help_text="Labeler names replaced by pseudonyms, stable within this export only."
    )
    consensus = serializers.ChoiceField(
        choices=service.CONSENSUS_METHODS, required=False, help_text="How a consensus label is inferred."
    )
    split = serializers.ListField(child=serializers.ChoiceField(choices=Split.values), required=False)
    source = serializers.ListField(
        child=serializers.ChoiceField(choices=service.SOURCES),
        required=False,
        help_text="Keep items whose final label came from these (none: no final label).",
    )
    min_confidence = serializers.FloatField(
        min_value=0,
        max_value=1,
        required=False,
        allow_null=True,
        help_text="Leave out items whose final label is a consensus less confident than this.",
    )
    slice = serializers.ListField(
        child=serializers.CharField(max_length=300),
        required=False,
        help_text="key=value metadata slices (all must hold).",
    )
    label_class = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, help_text="Keep items with these final labels."
    )
    only_final = serializers.BooleanField(required=False, help_text="Only items with a final label.")

    def validate(self, attrs):
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            raise ValidationError({name: ["Unknown option."] for name in unknown})
        return attrs


class DatasetExportSerializer(serializers.ModelSerializer):
    created_by = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = DatasetExport
        fields = [
            "id",
            "format",
            "options",
            "status",
            "progress",
            "rows",
            "size_bytes",
            "sha256",
            "error",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
            "download_url",
            "label_config",
        ]

    def get_created_by(self, obj) -> str | None:
        return obj.created_by.get_username() if obj.created_by_id else None

    def get_download_url(self, obj) -> str | None:
        if obj.status != DatasetExport.Status.DONE:
            return None
        return reverse("api:dataset-export-download", args=[obj.project_id, obj.pk])


def _exports(project):
    return DatasetExport.objects.filter(project=project).select_related("created_by").order_by("-created_at", "-pk")


class DatasetExportList(generics.ListAPIView):
    serializer_class = DatasetExportSerializer

    def get_queryset(self):
        return _exports(project_for(self.request.user, self.kwargs["project_id"], roles=STAFF_ROLES))

    @extend_schema(
        summary="Export the labelled dataset",
        description=(
            "One row per item: external id, split, metadata, the final label and its source (gold, resolution, "
            "consensus with method and confidence, or none), ambiguity, guideline versions, and on request every "
            "labeler's label (optionally pseudonymised) and the promoted model's prediction. A small project "
            "(up to 2,000 items) is exported in the request (201); a bigger one in the worker (202): poll the "
            "export for its progress. Unknown formats and options are refused with 400 naming them."
        ),
        request=DatasetExportCreateSerializer,
        responses={201: DatasetExportSerializer, 202: DatasetExportSerializer},
        examples=[
            OpenApiExample(
                "JSONL of the train split with every labeler's label",
                value={"format": "jsonl", "split": ["train"], "include_labels": True, "pseudonymize": True},
                request_only=True,
            )
        ],
    )
    def post(self, request, project_id):
        project = project_for(request.user, project_id, roles=STAFF_ROLES)
        data = DatasetExportCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        options = dict(data.validated_data)
        fmt = options.pop("format")
        try:
            export = service.create_export(project, fmt, options, user=request.user)
        except DomainError as exc:
            raise api_error(exc) from exc
        done = export.status == DatasetExport.Status.DONE
        return Response(
            DatasetExportSerializer(export).data, status=status.HTTP_201_CREATED if done else status.HTTP_202_ACCEPTED
        )


class DatasetExportDetail(generics.RetrieveAPIView):
    serializer_class = DatasetExportSerializer

    def get_queryset(self):
        return _exports(project_for(self.request.user, self.kwargs["project_id"], roles=STAFF_ROLES))


class DatasetExportDownload(APIView):
    @extend_schema(
        summary="Download an export's file", responses={(200, "application/octet-stream"): OpenApiTypes.BINARY}
    )
    def get(self, request, project_id, pk):
        project = project_for(request.user, project_id, roles=STAFF_ROLES)
        export = _exports(project).filter(pk=pk).first()
        if export is None:
            raise NotFound("No such export.")
        if export.status != DatasetExport.Status.DONE:
            raise ConflictError({"status": [f"The export is {export.status}; its file is not ready."]})
        try:
            path = service.file_path(export)
            handle = open(path, "rb")  # noqa: SIM115 - FileResponse closes it once streamed
        except (DomainError, FileNotFoundError) as exc:
            raise NotFound("The export's file is gone.") from exc
        response = FileResponse(handle, as_attachment=True, filename=service.download_name(export))
        response["X-Content-SHA256"] = export.sha256
        return response
