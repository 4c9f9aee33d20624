"""The leakage check's API: the latest report of a project (SMEs and MLEs read) and moving one
near-duplicate group into one split (MLEs). Non-members get 404, as everywhere."""

from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import STAFF_ROLES, project_for
from annotation.api.errors import api_error
from annotation.models import Role, Split

from . import leakage_service
from .errors import TrainingError
from .models import LeakageReport


class LeakageItemSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    split = serializers.CharField(help_text="The item's split now.")
    split_at_check = serializers.CharField(allow_null=True, help_text="Its split when the check ran.")
    thumbnail = serializers.SerializerMethodField()
    snippet = serializers.CharField(help_text="The text's first characters (text projects).")

    def get_thumbnail(self, row) -> str | None:
        if not row["has_thumbnail"]:
            return None
        return self.context["request"].build_absolute_uri(reverse("item-file", args=[row["id"], "thumbnail"]))


class LeakageGroupSerializer(serializers.Serializer):
    n = serializers.IntegerField(help_text="The group's number: POST .../leakage/groups/{n}/move")
    size = serializers.IntegerField(help_text="Items in the group.")
    movable = serializers.BooleanField(help_text="False for a group too big to be copies of one item.")
    items = LeakageItemSerializer(many=True)
    pair_count = serializers.IntegerField()
    pairs = serializers.JSONField(help_text="[{a, b, kind: exact|near, distance (of 64 bits) | jaccard}]")
    proposed_split = serializers.CharField(allow_null=True, help_text="Where a move without a split puts it.")
    moved = serializers.JSONField(allow_null=True, help_text="{to_split, by, at, items: [{item, from}]} once moved.")


class LeakageReportSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    snapshot = serializers.IntegerField(allow_null=True, help_text="The snapshot checked; null: all items.")
    created_at = serializers.DateTimeField()
    data_kind = serializers.CharField()
    thresholds = serializers.JSONField(help_text="Detectors and thresholds: image dhash bits, text Jaccard.")
    items_checked = serializers.IntegerField()
    pair_count = serializers.IntegerField(help_text="Near-duplicate pairs across splits.")
    group_count = serializers.IntegerField()
    redundancy = serializers.JSONField(help_text="Near-duplicate pairs inside one split: {split: n}.")
    seconds = serializers.FloatField()
    groups = LeakageGroupSerializer(many=True)


class MoveSerializer(serializers.Serializer):
    split = serializers.ChoiceField(
        choices=Split.choices,
        required=False,
        help_text="Where to put the group; default: the split most of its items are in (a tie: train).",
    )
    report = serializers.IntegerField(
        required=False, min_value=1, help_text="The report the group number belongs to (default: the latest)."
    )


class LeakageMoveResultSerializer(serializers.Serializer):
    group = serializers.IntegerField()
    to_split = serializers.CharField()
    moved = serializers.JSONField(help_text="[{item, from}]")
    by = serializers.CharField(allow_null=True)
    at = serializers.DateTimeField()


def _report(project, report_id=None):
    if report_id is not None:
        report = LeakageReport.objects.filter(project=project, pk=report_id).first()
    else:
        report = leakage_service.latest_report(project)
    if report is None:
        raise NotFound("No leakage check has run for this project yet: it runs when a model trains.")
    return report


class ProjectLeakage(APIView):
    @extend_schema(
        summary="Near-duplicates across splits",
        description="The project's latest leakage check (it runs before each snapshot trains): the groups of "
        "near-duplicate items that span train/dev/test, their pairs and the thresholds. 404 before any check.",
        parameters=[OpenApiParameter("report", int, description="A report id instead of the latest.")],
        responses=LeakageReportSerializer,
    )
    def get(self, request, project_id):
        project = project_for(request.user, project_id, roles=STAFF_ROLES)
        raw = request.query_params.get("report")
        if raw is not None and not raw.isdigit():
            raise api_error(TrainingError("report must be a report id (a positive integer)", "report"))
        report = _report(project, int(raw) if raw is not None else None)
        body = leakage_service.describe(report)
        return Response(LeakageReportSerializer(body, context={"request": request}).data)


class LeakageGroupMove(APIView):
    @extend_schema(
        summary="Move a near-duplicate group into one split",
        description="Every item of group n goes to one split (MLEs); recorded with who and when. A group "
        "moves once (409 after).",
        request=MoveSerializer,
        responses={200: LeakageMoveResultSerializer},
    )
    def post(self, request, project_id, n):
        project = project_for(request.user, project_id, roles=(Role.MLE,))
        data = MoveSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        report = _report(project, data.validated_data.get("report"))
        try:
            move = leakage_service.move_group(report, int(n), user=request.user, split=data.validated_data.get("split"))
        except TrainingError as exc:
            raise api_error(exc) from exc
        move.refresh_from_db()
        return Response(
            {
                "group": move.group,
                "to_split": move.to_split,
                "moved": move.moved,
                "by": move.by.username if move.by else None,
                "at": move.at,
            }
        )
