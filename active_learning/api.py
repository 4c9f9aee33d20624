"""The cycles API: a project's cycles (list, launch), one cycle with its batch, cancel.

SMEs and MLEs read; MLEs launch and cancel. Non-members get 404, labelers 404 (annotation.access).
A refused launch is 400 naming the field, or 409 when a cycle of the project is still running;
cancelling a finished cycle is 409.
"""

from django.db.models import Prefetch
from django.urls import reverse
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import STAFF_ROLES, project_for
from annotation.api.errors import api_error
from annotation.models import Role
from training.trainers import TRAINERS

from . import restriction, sampling, services
from .models import Cycle, CycleSelection


# A pattern, not an enum: spectacular would merge enums named "status" across the schema.
@extend_schema_field({"type": "string", "pattern": f"^({'|'.join(Cycle.Status.values)})$"})
class CycleStatusField(serializers.CharField):
    pass


class CycleSerializer(serializers.ModelSerializer):
    project = serializers.IntegerField(source="project_id", read_only=True)
    status = CycleStatusField(read_only=True, help_text="queued, running, then done, failed (see error) or cancelled.")
    model = serializers.SlugRelatedField(
        source="model_version", slug_field="short_id", read_only=True, help_text="The model the cycle trained."
    )
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    progress = serializers.SerializerMethodField(help_text="0..1 over the whole cycle, for a progress bar.")
    url = serializers.SerializerMethodField()
    restricted_to = serializers.SerializerMethodField(
        help_text='The pool restriction in words ("noise=car", "tag blurry"); "the whole pool" when none.'
    )

    class Meta:
        model = Cycle
        fields = [
            "id", "url", "project", "number", "status", "stage", "progress", "error", "strategy", "weights",
            "batch_size", "trainer", "review_top_k", "model", "pool_size", "summary", "timings", "attempts",
            "created_by", "created_at", "started_at", "finished_at", "pool_restriction", "restricted_to",
        ]  # fmt: skip

    def get_progress(self, cycle) -> float:
        return round(services.overall_progress(cycle), 4)

    def get_restricted_to(self, cycle) -> str:
        return restriction.describe(cycle.pool_restriction)

    def get_url(self, cycle) -> str:
        return self.context["request"].build_absolute_uri(reverse("cycles_api:cycle-detail", args=[cycle.pk]))


class CycleSelectionSerializer(serializers.ModelSerializer):
    external_id = serializers.CharField(source="item.external_id", read_only=True)
    queued = serializers.SerializerMethodField(help_text="Whether the item's queue entry is still waiting.")

    class Meta:
        model = CycleSelection
        fields = ["position", "item", "external_id", "strategy", "score", "queued"]

    def get_queued(self, row) -> bool:
        return bool(row.queue_entry and row.queue_entry.is_active)


class CycleDetailSerializer(CycleSerializer):
    batch = CycleSelectionSerializer(source="selections", many=True, read_only=True)

    class Meta(CycleSerializer.Meta):
        fields = [*CycleSerializer.Meta.fields, "batch"]


class LaunchSerializer(serializers.Serializer):
    strategy = serializers.ChoiceField(choices=list(sampling.STRATEGIES), default="mix")
    batch_size = serializers.IntegerField(required=False, help_text="Default: CONCORD_ACTIVE_LEARNING BATCH_SIZE.")
    trainer = serializers.ChoiceField(choices=list(TRAINERS), required=False)
    weights = serializers.CharField(
        required=False, allow_blank=True, help_text="For mix: e.g. margin:0.45,diversity:0.4,random:0.15"
    )
    review_top_k = serializers.BooleanField(
        default=False, help_text="Also send the model's confidently wrong training items to the SME queue."
    )
    pool_restriction = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text='"Label more like this": score only a slice or a tag\'s unlabeled items. {"kind": "slice", "key": '
        '"noise", "value": "car"}, {"kind": "tag", "tag": "blurry"}, or {"kind": "tag", "tag": "blurry", "nearest": '
        "60} (true: five per batch item) for the unlabeled items nearest to the tagged ones in the model's embedding.",
    )


def _cycles():
    return Cycle.objects.select_related("model_version", "created_by").order_by("-number")


class ProjectCycles(generics.ListCreateAPIView):
    """A project's cycles, newest first (SMEs and MLEs); an MLE launches one."""

    serializer_class = CycleSerializer

    def get_queryset(self):
        project = project_for(self.request.user, self.kwargs["project_id"], roles=STAFF_ROLES)
        return _cycles().filter(project=project)

    @extend_schema(
        summary="Launch a retrain-and-sample cycle",
        description="Queues the cycle's chain (train, score the unlabeled pool, select, queue); the answer is the "
        "new cycle, status `queued`. Poll `GET /api/v1/cycles/{id}/`. 409 while another cycle of the project runs.",
        request=LaunchSerializer,
        responses={202: CycleSerializer},
    )
    def post(self, request, project_id):
        project = project_for(request.user, project_id, roles=(Role.MLE,))
        data = LaunchSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        try:
            cycle = services.launch(
                project,
                strategy=fields["strategy"],
                batch_size=fields.get("batch_size", services.cycle_settings()["BATCH_SIZE"]),
                trainer=fields.get("trainer"),
                weights=fields.get("weights") or None,
                review_top_k=fields["review_top_k"],
                user=request.user,
                pool_restriction=fields.get("pool_restriction"),
            )
        except services.CycleError as exc:
            raise api_error(exc) from exc
        return Response(self.get_serializer(_cycles().get(pk=cycle.pk)).data, status=status.HTTP_202_ACCEPTED)


def _cycle_for(user, cycle_id, roles=STAFF_ROLES, queryset=None):
    cycle = (queryset if queryset is not None else _cycles()).filter(pk=cycle_id).first()
    if cycle is None:
        raise NotFound("No such cycle.")
    project_for(user, cycle.project_id, roles=roles)
    return cycle


class CycleDetail(APIView):
    @extend_schema(summary="One cycle with its batch in queue order", responses=CycleDetailSerializer)
    def get(self, request, cycle_id):
        rows = CycleSelection.objects.select_related("item", "queue_entry").order_by("position")
        queryset = _cycles().prefetch_related(Prefetch("selections", queryset=rows))
        cycle = _cycle_for(request.user, cycle_id, queryset=queryset)
        return Response(CycleDetailSerializer(cycle, context={"request": request}).data)


class CycleCancel(APIView):
    @extend_schema(summary="Cancel a queued or running cycle", request=None, responses={200: CycleSerializer})
    def post(self, request, cycle_id):
        cycle = _cycle_for(request.user, cycle_id, roles=(Role.MLE,))
        try:
            services.cancel(cycle, user=request.user)
        except services.CycleError as exc:
            raise api_error(exc) from exc
        return Response(CycleSerializer(_cycles().get(pk=cycle.pk), context={"request": request}).data)
