"""The training API: model versions of a project (list, train), one version, promote, roll back.

Views authorize (``project_for``: 404 for non-members, 403 for a member without the role), check
the input's shape, make one service call and answer. A refused request (TrainingError) is 400
naming the field at fault; promoting a model that is not ready, or rolling back one that is not
current (Conflict), is 409. SMEs and MLEs read; MLEs train, promote and roll back.
"""

from django.http import FileResponse
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.exceptions import APIException, NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import STAFF_ROLES, project_for
from annotation.api.errors import ConflictError, api_error
from annotation.models import Role
from annotation.text_rules import MAX_INT32

from . import exports, services, side_by_side, tuning
from . import metrics as M
from . import worknext as W
from .models import ModelExport, ModelVersion, Promotion, TuningRun, TuningTrial
from .trainers import TRAINERS

# --------------------------------------------------------------------------------------------
# Serializers
# --------------------------------------------------------------------------------------------


class SnapshotSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    content_hash = serializers.CharField(help_text="SHA-256 of the rows and class list: same labels, same hash.")
    created_at = serializers.DateTimeField()
    policy = serializers.JSONField(help_text="{consensus, min_confidence, keep_ambiguity}")
    classes = serializers.JSONField(help_text="[{id, name, is_ambiguity}] in class-index order.")
    counts = serializers.JSONField(help_text="{split: {class: labels}}")
    sources = serializers.JSONField(help_text="Items per label source and per reason left out.")
    size = serializers.IntegerField()


# A pattern, not an enum: spectacular would merge an enum with ImportBatch's "status" under a hashed name.
@extend_schema_field({"type": "string", "pattern": f"^({'|'.join(ModelVersion.Status.values)})$"})
class StatusField(serializers.CharField):
    pass


class ModelVersionSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="short_id", read_only=True, help_text="The model's short id.")
    status = StatusField(read_only=True, help_text="training, then ready or failed (see error).")
    project = serializers.IntegerField(source="project_id", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    snapshot = SnapshotSerializer(read_only=True, allow_null=True)
    accuracy = serializers.FloatField(
        source="headline_accuracy", read_only=True, allow_null=True, help_text="Dev (or cross-validated) accuracy."
    )
    url = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = [
            "id", "url", "project", "trainer", "status", "error", "stage", "progress", "epoch", "epochs",
            "is_promoted", "accuracy", "hyperparameters", "policy", "random_state", "snapshot", "timings",
            "attempts", "created_by", "created_at", "started_at", "finished_at",
        ]  # fmt: skip

    def get_url(self, version) -> str:
        return self.context["request"].build_absolute_uri(reverse("training_api:model-detail", args=[version.short_id]))


class ModelVersionDetailSerializer(ModelVersionSerializer):
    metrics = serializers.JSONField(
        read_only=True,
        help_text="evaluation (accuracy, per-class P/R/F1, confusion, ROC AUC, calibration, ECE), baselines, "
        "slices, gap_to_hlp, top_k, train, test, timings. Null figures are undefined.",
    )

    class Meta(ModelVersionSerializer.Meta):
        fields = [*ModelVersionSerializer.Meta.fields, "metrics"]


class TrainRequestSerializer(serializers.Serializer):
    trainer = serializers.ChoiceField(choices=list(TRAINERS))
    hyperparameters = serializers.DictField(required=False, default=dict, help_text="Trainer-specific; see README.")
    consensus = serializers.ChoiceField(choices=services.CONSENSUS_METHODS, required=False)
    min_confidence = serializers.FloatField(min_value=0, max_value=1, required=False)
    keep_ambiguity = serializers.BooleanField(required=False)
    # Stored in a PositiveIntegerField: PostgreSQL's `integer` ends at 2**31 - 1.
    random_state = serializers.IntegerField(min_value=0, max_value=MAX_INT32, required=False)


class PromotionSerializer(serializers.ModelSerializer):
    model = serializers.SlugRelatedField(source="model_version", slug_field="short_id", read_only=True)
    previous = serializers.SlugRelatedField(slug_field="short_id", read_only=True)
    by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Promotion
        fields = ["id", "action", "model", "previous", "by", "at", "note"]


class NoteSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")


# --------------------------------------------------------------------------------------------
# Views
# --------------------------------------------------------------------------------------------


def _versions():
    return ModelVersion.objects.select_related("snapshot", "created_by").order_by("-created_at", "-pk")


def _version_for(user, model_id, roles=STAFF_ROLES):
    """The version if the user may see its project (404 otherwise, also for a non-member)."""
    version = _versions().filter(short_id=model_id).first()
    if version is None:
        raise NotFound("No such model.")
    version.project = project_for(user, version.project_id, roles=roles)
    return version


class ProjectModels(generics.ListCreateAPIView):
    """Model versions of a project, newest first (SMEs and MLEs); an MLE starts a training."""

    serializer_class = ModelVersionSerializer

    def get_queryset(self):
        project = project_for(self.request.user, self.kwargs["project_id"], roles=STAFF_ROLES)
        return _versions().filter(project=project)

    @extend_schema(
        summary="Train a model",
        description="Queues a training run; the answer is the new version, status `training`. Poll "
        "`GET /api/v1/models/{id}/` for its progress.",
        request=TrainRequestSerializer,
        responses={202: ModelVersionSerializer},
    )
    def post(self, request, project_id):
        project = project_for(request.user, project_id, roles=(Role.MLE,))
        data = TrainRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        policy = {key: fields[key] for key in ("consensus", "min_confidence", "keep_ambiguity") if key in fields}
        try:
            version = services.start_training(
                project,
                trainer=fields["trainer"],
                user=request.user,
                hyperparameters=fields["hyperparameters"],
                policy=policy,
                random_state=fields.get("random_state"),
            )
        except services.TrainingError as exc:
            raise api_error(exc) from exc
        version = _versions().get(pk=version.pk)
        return Response(self.get_serializer(version).data, status=status.HTTP_202_ACCEPTED)


class ModelDetail(APIView):
    @extend_schema(summary="One model version with its metrics", responses=ModelVersionDetailSerializer)
    def get(self, request, model_id):
        version = _version_for(request.user, model_id)
        return Response(ModelVersionDetailSerializer(version, context={"request": request}).data)


class ModelAction(APIView):
    action_name = ""

    @extend_schema(request=NoteSerializer, responses={200: PromotionSerializer})
    def post(self, request, model_id):
        version = _version_for(request.user, model_id, roles=(Role.MLE,))
        data = NoteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        action = services.promote if self.action_name == "promote" else services.rollback
        try:
            record = action(version, user=request.user, note=data.validated_data["note"])
        except services.TrainingError as exc:
            raise api_error(exc) from exc
        version.refresh_from_db()
        body = {
            "model": ModelVersionSerializer(version, context={"request": request}).data,
            "promotion": PromotionSerializer(record).data if record is not None else None,
        }
        return Response(body)


class ModelPromote(ModelAction):
    """Make this ready model the project's current one (MLEs). Promoting the current model again
    changes nothing (`promotion` is null)."""

    action_name = "promote"


class ModelRollback(ModelAction):
    """Roll back this model, which must be the current one (MLEs): the model that was current
    before it becomes current again, or none is (409 if this model is not current)."""

    action_name = "rollback"


class ProjectPromotions(generics.ListAPIView):
    """The record of promotions and rollbacks of a project, newest first (SMEs and MLEs)."""

    serializer_class = PromotionSerializer

    def get_queryset(self):
        project = project_for(self.request.user, self.kwargs["project_id"], roles=STAFF_ROLES)
        return (
            Promotion.objects.filter(project=project)
            .select_related("model_version", "previous", "by")
            .order_by("-at", "-pk")
        )


# --------------------------------------------------------------------------------------------
# TFLite exports
# --------------------------------------------------------------------------------------------


class ModelExportSerializer(serializers.ModelSerializer):
    model = serializers.SlugRelatedField(source="model_version", slug_field="short_id", read_only=True)
    status = serializers.CharField(read_only=True, help_text="exporting, then ready, rejected or failed (see error).")
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    override_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    parity = serializers.JSONField(
        read_only=True,
        help_text="n, keras_accuracy, tflite_accuracy, delta, agreement, slices [{slice, n, keras_accuracy, "
        "tflite_accuracy, delta}], size_bytes, latency_ms, max_drop, split.",
    )
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = ModelExport
        fields = [
            "id", "model", "format", "status", "error", "parity", "size_bytes", "sha256", "download_url",
            "override_note", "override_by", "overridden_at", "created_by", "created_at", "finished_at",
        ]  # fmt: skip

    def get_download_url(self, export) -> str | None:
        if export.status != ModelExport.Status.READY:
            return None
        return self.context["request"].build_absolute_uri(reverse("training_api:export-download", args=[export.pk]))


class ExportRequestSerializer(serializers.Serializer):
    quantize = serializers.ChoiceField(choices=ModelExport.Format.values, help_text="float32 or int8 (full integer).")


def _export_for(user, export_id, roles=STAFF_ROLES):
    export = (
        ModelExport.objects.select_related("model_version", "created_by", "override_by").filter(pk=export_id).first()
    )
    if export is None:
        raise NotFound("No such export.")
    project_for(user, export.model_version.project_id, roles=roles)
    return export


class ModelExports(APIView):
    @extend_schema(summary="The TFLite exports of a model", responses=ModelExportSerializer(many=True))
    def get(self, request, model_id):
        version = _version_for(request.user, model_id)
        rows = version.exports.select_related("model_version", "created_by", "override_by").order_by("-pk")
        return Response(ModelExportSerializer(rows, many=True, context={"request": request}).data)

    @extend_schema(
        summary="Export a model to TensorFlow Lite",
        description="Queues the export of a ready keras_cnn model (MLEs); the answer is the export, status "
        "`exporting`. Poll `GET /api/v1/exports/{id}/`.",
        request=ExportRequestSerializer,
        responses={202: ModelExportSerializer},
    )
    def post(self, request, model_id):
        version = _version_for(request.user, model_id, roles=(Role.MLE,))
        data = ExportRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            export = exports.start_export(version, data.validated_data["quantize"], user=request.user)
        except services.TrainingError as exc:
            raise api_error(exc) from exc
        body = ModelExportSerializer(_export_for(request.user, export.pk), context={"request": request}).data
        return Response(body, status=status.HTTP_202_ACCEPTED)


class ExportDetail(APIView):
    @extend_schema(summary="One TFLite export with its parity figures", responses=ModelExportSerializer)
    def get(self, request, export_id):
        export = _export_for(request.user, export_id)
        return Response(ModelExportSerializer(export, context={"request": request}).data)


class ExportOverride(APIView):
    """Accept a rejected int8 export despite its accuracy drop (MLEs), with a note saying why."""

    @extend_schema(request=NoteSerializer, responses={200: ModelExportSerializer})
    def post(self, request, export_id):
        export = _export_for(request.user, export_id, roles=(Role.MLE,))
        data = NoteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            export = exports.override(export, user=request.user, note=data.validated_data["note"])
        except services.TrainingError as exc:
            raise api_error(exc) from exc
        return Response(ModelExportSerializer(export, context={"request": request}).data)


class ExportDownload(APIView):
    """The bundle (zip) of a ready export, for members of its project (SMEs and MLEs)."""

    @extend_schema(responses={(200, "application/zip"): bytes})
    def get(self, request, export_id):
        export = _export_for(request.user, export_id)
        return download_response(export)


class BundleGone(APIException):
    status_code = status.HTTP_410_GONE
    default_code = "gone"


def bundle_file(export):
    """The path of a ready export's zip, or None when its file has gone from the artifact folder
    (or its recorded path would leave that folder, which the server never serves)."""
    try:
        path = exports.bundle_path(export)
    except exports.ExportError:
        return None
    return path if path.is_file() else None


def download_response(export):
    """The bundle as an attachment; a gone file is 410 (the model page checks `bundle_file` first)."""
    if export.status != ModelExport.Status.READY:
        raise ConflictError({"non_field_errors": [f"export {export.pk} is {export.status}, not ready"]})
    path = bundle_file(export)
    if path is None:
        raise BundleGone(f"The bundle file of export {export.pk} is gone from the server; export the model again.")
    response = FileResponse(path.open("rb"), as_attachment=True, filename=exports.bundle_filename(export))
    response["Content-Type"] = "application/zip"
    response["X-Checksum-SHA256"] = export.sha256
    return response


# --------------------------------------------------------------------------------------------
# Where to work next (training/worknext.py)
# --------------------------------------------------------------------------------------------


class WorkNextRowSerializer(serializers.Serializer):
    slice = serializers.CharField(help_text='"key=value" for a metadata slice, "tag <name>" for a tag.')
    kind = serializers.CharField(help_text="metadata or tag")
    key = serializers.CharField(help_text='The slice key ("tag:<name>" for a tag).')
    value = serializers.CharField()
    tag = serializers.CharField(allow_null=True)
    n = serializers.IntegerField(help_text="Evaluated items in the slice.")
    errors = serializers.IntegerField(help_text="Of them, wrongly predicted.")
    share = serializers.FloatField(allow_null=True, help_text="Share of all the project's items.")
    error_share = serializers.FloatField(allow_null=True, help_text="Share of the model's errors on evaluated items.")
    accuracy = serializers.FloatField(allow_null=True)
    acc_low = serializers.FloatField(allow_null=True, help_text="95% Wilson interval of the accuracy.")
    acc_high = serializers.FloatField(allow_null=True)
    hlp = serializers.FloatField(allow_null=True)
    hlp_low = serializers.FloatField(allow_null=True, help_text="The quality report's (cluster-aware) interval.")
    hlp_high = serializers.FloatField(allow_null=True)
    hlp_basis = serializers.CharField(
        allow_null=True, help_text="slice, or project when the slice has no HLP of its own."
    )
    gap = serializers.FloatField(allow_null=True, help_text="HLP - accuracy.")
    priority = serializers.FloatField(allow_null=True, help_text="gap x share.")


class WorkNextSerializer(serializers.Serializer):
    model = serializers.CharField()
    rule = serializers.CharField()
    sort = serializers.CharField()
    order = serializers.CharField()
    evaluated = serializers.IntegerField(allow_null=True)
    errors = serializers.IntegerField(allow_null=True)
    rows = WorkNextRowSerializer(many=True)


class WorkNextQuerySerializer(serializers.Serializer):
    sort = serializers.ChoiceField(choices=list(W.SORT_COLUMNS), default="priority")
    order = serializers.ChoiceField(choices=["asc", "desc"], required=False, help_text="Default: the column's own.")


class ModelWorkNext(APIView):
    @extend_schema(
        summary='The "where to work next" table of a model',
        description="One row per slice value and per tag, computed when the model was evaluated: share of the "
        "data, share of the model's errors, accuracy and HLP with intervals, gap and priority (gap x share).",
        parameters=[WorkNextQuerySerializer],
        responses=WorkNextSerializer,
    )
    def get(self, request, model_id):
        version = _version_for(request.user, model_id)
        query = WorkNextQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        table = (version.metrics or {}).get("work_next") or {}
        sort, order = query.validated_data["sort"], query.validated_data.get("order")
        descending = None if order is None else order == "desc"
        rows = W.sort_rows(table.get("rows") or [], sort, descending)
        body = {
            "model": version.short_id,
            "rule": table.get("rule") or W.RULE,
            "sort": sort,
            "order": order or ("desc" if W.SORT_COLUMNS[sort] else "asc"),
            "evaluated": table.get("evaluated"),
            "errors": table.get("errors"),
            "rows": rows,
        }
        return Response(WorkNextSerializer(body).data)


# Tuning runs (MLEs only: to anyone else the runs do not exist, 404)
# --------------------------------------------------------------------------------------------


@extend_schema_field({"type": "string", "pattern": f"^({'|'.join(TuningRun.Status.values)})$"})
class TuningStatusField(serializers.CharField):
    pass


class TuningTrialSerializer(serializers.ModelSerializer):
    accuracy = serializers.FloatField(read_only=True, allow_null=True, help_text="Dev (or out-of-fold) accuracy.")
    dev_metrics = serializers.JSONField(read_only=True, help_text="{accuracy, n, method, resource?, epochs_run?}")
    params = serializers.JSONField(read_only=True, help_text="Every hyperparameter of the trainer.")

    class Meta:
        model = TuningTrial
        fields = ["number", "status", "params", "accuracy", "dev_metrics", "seconds", "error"]


class TuningRunSerializer(serializers.ModelSerializer):
    status = TuningStatusField(read_only=True, help_text="queued, running, then done, failed or cancelled.")
    search = serializers.CharField(read_only=True)
    stage = serializers.CharField(read_only=True)
    project = serializers.IntegerField(source="project_id", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    space = serializers.JSONField(read_only=True)
    best_trial = serializers.IntegerField(source="best_trial.number", read_only=True, allow_null=True, default=None)
    model = serializers.SlugRelatedField(source="model_version", slug_field="short_id", read_only=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = TuningRun
        fields = [
            "id", "url", "project", "trainer", "search", "space", "budget_trials", "budget_minutes", "random_state",
            "method", "status", "stage", "progress", "error", "cancel_requested", "attempts", "best_trial", "model",
            "created_by", "created_at", "started_at", "finished_at",
        ]  # fmt: skip

    def get_url(self, run) -> str:
        return self.context["request"].build_absolute_uri(
            reverse("training_api:tuning-run-detail", args=[run.project_id, run.pk])
        )


class TuningRunDetailSerializer(TuningRunSerializer):
    trials = TuningTrialSerializer(many=True, read_only=True)

    class Meta(TuningRunSerializer.Meta):
        fields = [*TuningRunSerializer.Meta.fields, "trials"]


class TuningRequestSerializer(serializers.Serializer):
    trainer = serializers.ChoiceField(choices=list(TRAINERS))
    search = serializers.ChoiceField(choices=TuningRun.Search.values)
    space = serializers.DictField(help_text='{name: {"low", "high", "log"} | {"values": [...]} | number}')
    budget_trials = serializers.IntegerField(min_value=1, max_value=MAX_INT32)
    budget_minutes = serializers.IntegerField(min_value=1, max_value=MAX_INT32)
    random_state = serializers.IntegerField(min_value=0, max_value=MAX_INT32, required=False)


def mle_project(user, project_id):
    """The project for one of its MLEs; 404 for anyone else (tuning runs are the MLEs' own)."""
    project = project_for(user, project_id)
    if project.role != Role.MLE:
        raise NotFound("No such project.")
    return project


def _tuning_runs(project):
    return (
        TuningRun.objects.filter(project=project)
        .select_related("created_by", "best_trial", "model_version")
        .order_by("-created_at", "-pk")
    )


def tuning_run_for(user, project_id, run_id):
    run = _tuning_runs(mle_project(user, project_id)).filter(pk=run_id).first()
    if run is None:
        raise NotFound("No such tuning run.")
    return run


class ProjectTuningRuns(generics.ListCreateAPIView):
    """Tuning runs of a project, newest first; an MLE launches one (MLEs only)."""

    serializer_class = TuningRunSerializer

    def get_queryset(self):
        return _tuning_runs(mle_project(self.request.user, self.kwargs["project_id"]))

    @extend_schema(
        summary="Launch a tuning run",
        description="Checks the search space and the budget (400 naming the bad key) and queues the run; "
        "poll its detail for progress and trials.",
        request=TuningRequestSerializer,
        responses={202: TuningRunSerializer},
    )
    def post(self, request, project_id):
        project = mle_project(request.user, project_id)
        data = TuningRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            run = tuning.start_tuning(project, user=request.user, **data.validated_data)
        except services.TrainingError as exc:
            raise api_error(exc) from exc
        return Response(self.get_serializer(_tuning_runs(project).get(pk=run.pk)).data, status=status.HTTP_202_ACCEPTED)


class TuningRunDetail(APIView):
    @extend_schema(summary="One tuning run with its trials", responses=TuningRunDetailSerializer)
    def get(self, request, project_id, run_id):
        run = tuning_run_for(request.user, project_id, run_id)
        return Response(TuningRunDetailSerializer(run, context={"request": request}).data)


class TuningRunCancel(APIView):
    """Cancel a queued or running tuning run (409 when it has ended). A running one stops within
    the trial it is in; the trials that finished stay listed."""

    @extend_schema(request=None, responses={200: TuningRunSerializer})
    def post(self, request, project_id, run_id):
        run = tuning_run_for(request.user, project_id, run_id)
        try:
            tuning.cancel(run)
        except services.TrainingError as exc:
            raise api_error(exc) from exc
        run = tuning_run_for(request.user, project_id, run_id)
        return Response(TuningRunSerializer(run, context={"request": request}).data)


# Versions side by side
# --------------------------------------------------------------------------------------------


class ComparisonSerializer(serializers.Serializer):
    reference = serializers.CharField(help_text="The first version named: every pair is measured against it.")
    versions = serializers.JSONField(
        help_text="Per version: id, trainer, accuracy, macro_f1, ece, test_accuracy, majority_accuracy, hlp, "
        "gap_to_hlp, has_predictions, history (the learning curve), curve (its lowest validation loss), calibration."
    )
    classes = serializers.JSONField(help_text="[{name, recall: [per version], f1: [per version]}]")
    slices = serializers.JSONField(help_text="[{slice, accuracy: [...], hlp: [...], gap: [...]}], per version.")
    pairs = serializers.JSONField(
        help_text="Each later version against the reference on their shared evaluation items: {a, b, available, "
        "n, accuracy_a, accuracy_b, difference, table, statistic, pvalue, method, beyond_noise, better, "
        "relabelled}, or {available: false, reason} for versions without stored predictions."
    )


class ProjectModelCompare(APIView):
    """Two to six ready versions of a project side by side (SMEs and MLEs), each later one paired
    with the first by McNemar's test on their shared evaluation items."""

    @extend_schema(
        summary="Compare model versions",
        parameters=[
            OpenApiParameter("v", str, many=True, required=True, description="A model id; give two to six: ?v=a&v=b")
        ],
        responses=ComparisonSerializer,
    )
    def get(self, request, project_id):
        project = project_for(request.user, project_id, roles=STAFF_ROLES)
        try:
            versions = side_by_side.chosen_versions(project, request.query_params.getlist("v"))
        except services.TrainingError as exc:
            raise api_error(exc) from exc
        return Response(M.json_safe(side_by_side.compare_versions(versions)))
