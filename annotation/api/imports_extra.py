"""Importing labelled data through the API (MLEs), and reading imported predictions (SMEs, MLEs).

An upload over the queue threshold is answered 202 with its batch in status `queued` and
imported by a worker (services/queued_import.py); a smaller one is imported now and answered
201. Either way the batch is the one `api:import-detail` shows, row-level errors and all.
Labelers and non-members get 404, SMEs 403 on the uploads.
"""

import tempfile
from pathlib import Path

from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from ..access import STAFF_ROLES, project_for
from ..errors import DomainError
from ..models import ImportBatch, ItemPrediction, Role
from ..services import queued_import
from ..services.annotation_import import import_annotations
from ..services.labelstudio_import import import_labels_jsonl, import_labelstudio
from . import serializers
from .errors import api_error


def run_upload(request, project, *, job, kind, uploads, options):
    """Queue the import when the uploads are large, else run it now on temporary copies.
    Returns the response: 202 with a queued batch, 201 with a finished one."""
    if queued_import.should_queue(sum(u.size for u in uploads.values())):
        user = request.user
        batch = queued_import.queue_import(project, job=job, kind=kind, uploads=uploads, options=options, user=user)
        code = status.HTTP_202_ACCEPTED
    else:
        with tempfile.TemporaryDirectory() as folder:
            paths = {}
            for role, upload in uploads.items():
                (Path(folder) / role).mkdir()
                paths[role] = Path(folder) / role / Path(upload.name).name
                with open(paths[role], "wb") as out:
                    for chunk in upload.chunks():
                        out.write(chunk)
            try:
                batch = _run_now(project, job, paths, options, request.user, Path(uploads["file"].name).name)
            except DomainError as exc:
                raise api_error(exc) from exc
        code = status.HTTP_201_CREATED
    batch = ImportBatch.objects.select_related("created_by").get(pk=batch.pk)
    return Response(serializers.ImportBatchSerializer(batch).data, status=code)


def _run_now(project, job, paths, options, user, source_name):
    from ..services.item_import import import_items

    common = {"user": user, "source_name": source_name}
    if job == "items":
        return import_items(project, paths["file"], **common)
    if job == "labelstudio":
        return import_labelstudio(project, paths["file"], create_classes=options["create_classes"], **common)
    if job == "labels_jsonl":
        return import_labels_jsonl(project, paths["file"], create_classes=options["create_classes"], **common)
    return import_annotations(project, paths["file"], truth_path=paths.get("truth"), **options, **common)


class LabelStudioImport(generics.GenericAPIView):
    """Import a Label Studio JSON export (tasks, their annotations by named labelers, gold from
    ground-truth annotations, predictions as model scores). MLEs only."""

    parser_classes = [MultiPartParser, FormParser]
    serializer_class = serializers.LabelStudioUploadSerializer

    @extend_schema(
        request=serializers.LabelStudioUploadSerializer,
        responses={201: serializers.ImportBatchSerializer, 202: serializers.ImportBatchSerializer},
    )
    def post(self, request, project_id):
        project = project_for(request.user, project_id, roles=(Role.MLE,))
        data = self.get_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        options = {"create_classes": data.validated_data["create_classes"]}
        uploads = {"file": data.validated_data["file"]}
        return run_upload(
            request, project, job="labelstudio", kind=ImportBatch.Kind.LABELSTUDIO, uploads=uploads, options=options
        )


class AnnotationImport(generics.GenericAPIView):
    """Import existing annotations and gold: csv rows (item, labeler, label; a truth file of
    item, label rows as gold), Concord JSONL, or Label Studio JSON. MLEs only."""

    parser_classes = [MultiPartParser, FormParser]
    serializer_class = serializers.AnnotationUploadSerializer

    @extend_schema(
        request=serializers.AnnotationUploadSerializer,
        responses={201: serializers.ImportBatchSerializer, 202: serializers.ImportBatchSerializer},
    )
    def post(self, request, project_id):
        project = project_for(request.user, project_id, roles=(Role.MLE,))
        data = self.get_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        uploads = {"file": values["file"]}
        options = {"create_classes": values["create_classes"]}
        if values["format"] == "labelstudio":
            job, kind = "labelstudio", ImportBatch.Kind.LABELSTUDIO
        elif values["format"] == "jsonl":
            job, kind = "labels_jsonl", ImportBatch.Kind.ANNOTATIONS
        else:
            job, kind = "annotations", ImportBatch.Kind.ANNOTATIONS
            options.update(
                columns=values.get("columns"),
                truth_columns=values.get("truth_columns"),
                has_header=values["has_header"],
                delimiter=values["delimiter"],
            )
            if "truth" in values:
                uploads["truth"] = values["truth"]
        return run_upload(request, project, job=job, kind=kind, uploads=uploads, options=options)


class PredictionList(generics.ListAPIView):
    """Imported model scores per item (SMEs and MLEs; labelers label blind and never see them).
    Filter with ?item=<id> or ?source=<model version>."""

    serializer_class = serializers.ItemPredictionSerializer

    def get_queryset(self):
        project = project_for(self.request.user, self.kwargs["project_id"], roles=STAFF_ROLES)
        rows = ItemPrediction.objects.filter(item__project=project).select_related("item", "label_class")
        item = self.request.query_params.get("item")
        if item is not None:
            if not item.isdigit() or len(item) > 18:
                raise ValidationError({"item": ["must be an item id (a whole number)"]})
            rows = rows.filter(item_id=int(item))
        source = self.request.query_params.get("source")
        if source is not None:
            rows = rows.filter(source=source)
        return rows.order_by("item_id", "source", "label_class__order", "id")
