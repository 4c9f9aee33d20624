"""GET /api/v1/projects/{id}/quality/: the project's stored label-quality report (SMEs and MLEs)."""

from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, PolymorphicProxySerializer, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from ..access import STAFF_ROLES, project_for
from ..models import QualityReport
from ..services.quality import fingerprint, quality_for_display

SHARE = "A share in [0, 1]; null where undefined (nothing to count)."


class QualityAgreementSerializer(serializers.Serializer):
    krippendorff_alpha = serializers.FloatField(allow_null=True, help_text="Nominal alpha over all current labels.")
    fleiss_kappa = serializers.FloatField(allow_null=True, help_text="Fleiss' kappa, varying labels per item.")
    percent_agreement = serializers.FloatField(allow_null=True, help_text="Share of agreeing labeler pairs.")
    paired_items = serializers.IntegerField(help_text="N: items with at least two labels (the ones measured).")
    paired_labels = serializers.IntegerField()
    pairs = serializers.IntegerField(help_text="Labeler pairs on the same item.")
    labelers = serializers.IntegerField()
    items_with_disagreement = serializers.IntegerField(help_text="Items whose labels name two or more classes.")


class QualityHlpSerializer(serializers.Serializer):
    basis = serializers.ChoiceField(
        choices=["ground_truth", "pairwise_agreement"],
        allow_null=True,
        help_text="ground_truth: value is accuracy against gold/resolution; pairwise_agreement: value is the "
        "chance that two labelers agree (a proxy, used where no item has ground truth).",
    )
    label = serializers.CharField(help_text="What `value` is, in words.")
    value = serializers.FloatField(allow_null=True)
    ci_low = serializers.FloatField(allow_null=True, help_text="95 % Wilson interval (ground truth basis only).")
    ci_high = serializers.FloatField(allow_null=True)
    correct = serializers.IntegerField()
    scored_labels = serializers.IntegerField(help_text="Labels on items with ground truth.")
    scored_items = serializers.IntegerField()
    labeler_mean = serializers.FloatField(allow_null=True, help_text="Unweighted mean of the labelers' accuracies.")
    labelers_scored = serializers.IntegerField()
    pairwise_agreement = serializers.FloatField(allow_null=True)
    pairs = serializers.IntegerField()


class QualityLabelerSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="User id.")
    name = serializers.CharField()
    labels = serializers.IntegerField(help_text="Current labels.")
    pairs = serializers.IntegerField(help_text="Pairs with other labelers on the same items.")
    agreement = serializers.FloatField(allow_null=True, help_text="Share of those pairs that agree.")
    kappa = serializers.FloatField(allow_null=True, help_text="Cohen-style kappa against the other labelers, pooled.")
    scored = serializers.IntegerField(help_text="Labels on items with ground truth.")
    correct = serializers.IntegerField()
    accuracy = serializers.FloatField(allow_null=True)
    ci_low = serializers.FloatField(allow_null=True, help_text="95 % Wilson interval of the accuracy.")
    ci_high = serializers.FloatField(allow_null=True)
    dawid_skene_accuracy = serializers.FloatField(
        allow_null=True, help_text="Accuracy estimated by Dawid-Skene without ground truth."
    )
    timed = serializers.IntegerField(help_text="Labels with a duration.")
    labels_per_hour = serializers.FloatField(allow_null=True)
    median_seconds = serializers.FloatField(allow_null=True)
    ambiguity_share = serializers.FloatField(allow_null=True, help_text=SHARE)
    unsure_share = serializers.FloatField(allow_null=True, help_text=SHARE)


class QualityVersionSerializer(serializers.Serializer):
    version = serializers.IntegerField(help_text="Guideline version; -1 for labels made under none.")
    labels = serializers.IntegerField()
    labelers = serializers.IntegerField()
    items = serializers.IntegerField()
    paired_items = serializers.IntegerField()
    pairs = serializers.IntegerField()
    percent_agreement = serializers.FloatField(allow_null=True)
    fleiss_kappa = serializers.FloatField(allow_null=True)
    krippendorff_alpha = serializers.FloatField(allow_null=True)
    accuracy = serializers.FloatField(allow_null=True)
    correct = serializers.IntegerField()
    scored = serializers.IntegerField()
    ci_low = serializers.FloatField(allow_null=True)
    ci_high = serializers.FloatField(allow_null=True)
    ambiguity_share = serializers.FloatField(allow_null=True)
    unsure_share = serializers.FloatField(allow_null=True)


class QualityReportSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ready", "computing"])
    computed_at = serializers.DateTimeField(allow_null=True)
    age_seconds = serializers.FloatField(allow_null=True, help_text="Seconds since the report was computed.")
    stale = serializers.BooleanField(help_text="Labels, resolutions or gold changed since it was computed.")
    refresh_queued = serializers.BooleanField(help_text="This request queued a recomputation.")
    annotation_count = serializers.IntegerField(help_text="Current annotations now.")
    schema_version = serializers.IntegerField()
    project = serializers.JSONField(help_text="{id, slug, name, task_type}")
    source = serializers.JSONField(help_text="What the report was computed from: counts and highest ids.")
    supported = serializers.BooleanField(help_text="False for multi-label projects (not covered yet).")
    reason = serializers.CharField(allow_null=True, help_text="Why the report is not supported, if so.")
    counts = serializers.JSONField(help_text="annotations, items, labelers, classes, truth/gold/resolution items.")
    agreement = QualityAgreementSerializer()
    hlp = QualityHlpSerializer(help_text="Project human-level performance.")
    hlp_by_source = serializers.JSONField(
        allow_null=True,
        help_text="HLP against gold and against SME resolutions apart (gold / resolution: correct, scored_labels, "
        "scored_items, accuracy, ci_low, ci_high, design_effect; resolution adds own_labels_excluded), "
        "interval_method, note.",
    )
    labelers = QualityLabelerSerializer(many=True)
    classes = serializers.JSONField(
        help_text="Per class: given, specific_agreement, and grouped by reference class (truth, else majority "
        "vote): accuracy with interval, ambiguity_share, unsure_share."
    )
    confusion = serializers.JSONField(help_text="classes, counts (K x K label pairs), row_share.")
    ambiguity = serializers.JSONField(
        help_text="Ambiguity-class and unsure shares, and confused_pairs with action (merge / borderline / "
        "clarify), reason and evidence."
    )
    slices = serializers.JSONField(
        help_text="Per metadata key, its values with enough items and their figures; every tag as the key "
        "tag:<name> with the one value yes."
    )
    disputed_items = serializers.JSONField(help_text="Highest label entropy first: item_id, external_id, counts.")
    guideline_versions = QualityVersionSerializer(many=True)
    consensus = serializers.JSONField(help_text="Majority vote and Dawid-Skene accuracy against gold.")
    duplicates = serializers.JSONField(help_text="Edited and conflicting (item, labeler) pairs; `what` says how.")
    settings = serializers.JSONField()
    timing = serializers.JSONField()


class QualityComputingSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["computing"])
    computed_at = serializers.DateTimeField(allow_null=True)
    age_seconds = serializers.FloatField(allow_null=True)
    stale = serializers.BooleanField()
    refresh_queued = serializers.BooleanField()
    annotation_count = serializers.IntegerField()


class QualityStatusSerializer(serializers.Serializer):
    # Not a ChoiceField: spectacular would name a third "status" enum with a hash.
    status = serializers.CharField(help_text="ready, or computing while there is no report yet.")
    report_id = serializers.IntegerField(allow_null=True, help_text="The latest stored report; null before the first.")
    computed_at = serializers.DateTimeField(allow_null=True)
    age_seconds = serializers.FloatField(allow_null=True)
    stale = serializers.BooleanField(help_text="Labels, resolutions or gold changed since it was computed.")
    annotation_count = serializers.IntegerField(help_text="Current annotations now.")


def quality_status(project, now=None) -> dict:
    """Which report is stored and whether it is stale, without loading the report itself (the
    pages poll this while a refresh runs). Queues nothing: the page load or the full GET did."""
    current = fingerprint(project)
    latest = (
        QualityReport.objects.filter(project=project)
        .order_by("-computed_at", "-pk")
        .values("pk", "computed_at", "annotation_count", "data__source")
        .first()
    )
    if latest is None:
        return {
            "status": "computing",
            "report_id": None,
            "computed_at": None,
            "age_seconds": None,
            "stale": True,
            "annotation_count": current["annotations"],
        }
    fresh = latest["annotation_count"] == current["annotations"] and latest["data__source"] == current
    age = max(0.0, ((now or timezone.now()) - latest["computed_at"]).total_seconds())
    return {
        "status": "ready",
        "report_id": latest["pk"],
        "computed_at": latest["computed_at"].isoformat(),
        "age_seconds": round(age, 3),
        "stale": not fresh,
        "annotation_count": current["annotations"],
    }


class QualityReportView(APIView):
    @extend_schema(
        summary="Label-quality report of a project",
        description=(
            "Agreement (Krippendorff's alpha, Fleiss' kappa), human-level performance per labeler, class and "
            "slice, the inter-labeler confusion matrix, confused class pairs with a suggested action, the most "
            "disputed items, agreement per guideline version, consensus accuracy against gold and edited labels. "
            "SMEs and MLEs of the project only (labelers: 403, non-members: 404).\n\n"
            "The report is computed by a background task after labels change and served from storage with its "
            "age; `stale` says labels changed since, and a refresh is then queued. A project with no report yet "
            "gets one computed in the request if it has fewer than 20,000 annotations, else 202 while the "
            "first report is computed.\n\n"
            "`?only=status` answers only which report is stored and whether it is stale (a few queries, "
            "nothing queued): what the dashboard polls to update itself when a refresh lands."
        ),
        parameters=[
            OpenApiParameter(
                "only", str, enum=["status"], required=False, description="`status`: the report's status only."
            )
        ],
        responses={
            200: PolymorphicProxySerializer(
                component_name="QualityReportOrStatus",
                serializers=[QualityReportSerializer, QualityStatusSerializer],
                resource_type_field_name=None,
            ),
            202: QualityComputingSerializer,
        },
        examples=[
            OpenApiExample(
                "Being computed",
                value={
                    "status": "computing",
                    "computed_at": None,
                    "age_seconds": None,
                    "stale": True,
                    "refresh_queued": True,
                    "annotation_count": 1000000,
                },
                response_only=True,
                status_codes=["202"],
            )
        ],
    )
    def get(self, request, project_id):
        project = project_for(request.user, project_id, roles=STAFF_ROLES)
        only = request.query_params.get("only")
        if only is not None:
            if only != "status":
                raise ValidationError({"only": ["The only value accepted is 'status'."]})
            return Response(quality_status(project), headers={"Cache-Control": "no-store"})
        shown = quality_for_display(project)
        return Response(shown.payload(), status=200 if shown.report is not None else 202)
