"""The monitoring page (per project, per channel) and its API.

SMEs and MLEs read; MLEs ask for a fresh computation and acknowledge alerts. Non-members get 404
(page and API); a labeler gets 403 on the page and 404 from the API (annotation/access.py's
rules). Filters (``export``, ``device``) that are not whole numbers, or name a bundle or device
of another project, are refused with 400 naming the field.
"""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import STAFF_ROLES, project_for
from annotation.models import Role
from frontend.charts import interval_bar
from frontend.staff import page_context, staff_project

from . import field_queue, monitoring, monitoring_charts
from .models import ChannelName, Device
from .monitoring_models import DriftAlert


class MonitoringQuery(serializers.Serializer):
    channel = serializers.CharField(required=False, help_text="stable or canary")
    export = serializers.IntegerField(required=False, min_value=1, help_text="A bundle (export id).")
    device = serializers.IntegerField(required=False, min_value=1, help_text="A device id.")

    def validate_channel(self, value):
        if value not in ChannelName.values:
            raise serializers.ValidationError(f"must be one of {', '.join(ChannelName.values)}")
        return value

    def validate(self, data):
        project = self.context["project"]
        if "device" in data and not Device.objects.filter(project=project, pk=data["device"]).exists():
            raise serializers.ValidationError({"device": "no such device in this project"})
        if "export" in data:
            from training.models import ModelExport

            if not ModelExport.objects.filter(model_version__project=project, pk=data["export"]).exists():
                raise serializers.ValidationError({"export": "no such bundle in this project"})
        return data


class MonitoringSerializer(serializers.Serializer):
    thresholds = serializers.DictField(help_text="window, alpha, psi_warning, min_inputs")
    windows = serializers.ListField(child=serializers.DictField(), help_text="Tested windows, oldest first.")
    per_day = serializers.ListField(child=serializers.DictField(), help_text="Predictions per UTC day.")
    alerts = serializers.ListField(child=serializers.DictField(), help_text="Newest first.")
    field_accuracy = serializers.ListField(child=serializers.DictField(), help_text="Per bundle, beside dev parity.")
    selectors = serializers.DictField(help_text="Channels, bundles and devices to filter by.")


class QueuedSerializer(serializers.Serializer):
    queued = serializers.BooleanField()


def _figures(project, query: dict) -> dict:
    data = monitoring.summary(
        project, channel=query.get("channel"), export_id=query.get("export"), device_id=query.get("device")
    )
    data["field_accuracy"] = field_queue.field_accuracy(project)
    data["selectors"] = monitoring.selectors(project)
    return data


class ProjectMonitoring(APIView):
    @extend_schema(
        summary="Field monitoring: tested windows, predictions per day, alerts, field accuracy",
        parameters=[MonitoringQuery],
        responses=MonitoringSerializer,
    )
    def get(self, request, project_id):
        project = project_for(request.user, project_id, roles=STAFF_ROLES)
        query = MonitoringQuery(data=request.query_params, context={"project": project})
        query.is_valid(raise_exception=True)
        return Response(MonitoringSerializer(_figures(project, query.validated_data)).data)


class ProjectMonitoringRefresh(APIView):
    @extend_schema(summary="Queue the monitoring computation (MLEs)", request=None, responses={202: QueuedSerializer})
    def post(self, request, project_id):
        project = project_for(request.user, project_id, roles=(Role.MLE,))
        monitoring.queue_monitoring(project)
        return Response({"queued": True}, status=status.HTTP_202_ACCEPTED)


@require_GET
def monitoring_page(request, slug, channel=None):
    project = staff_project(request, slug)
    if channel is not None and channel not in ChannelName.values:
        raise Http404("No such channel.")
    raw = {k: v for k, v in request.GET.items() if k in ("export", "device") and v != ""}
    if channel:
        raw["channel"] = channel
    query = MonitoringQuery(data=raw, context={"project": project})
    error = None
    if not query.is_valid():
        error = "; ".join(f"{field}: {' '.join(map(str, msgs))}" for field, msgs in query.errors.items())
        data = _figures(project, {"channel": channel} if channel else {})
    else:
        data = _figures(project, query.validated_data)
    context = {
        **page_context(project),
        "channel": channel,
        "selected": query.validated_data if error is None else {},
        "error": error,
        "data": data,
        "charts": monitoring_charts.charts_for(data),
        "open_alerts": [a for a in data["alerts"] if a["status"] == "open"],
        "field_rows": [
            {
                **row,
                "field_bar": interval_bar(
                    row["accuracy"], row["ci_low"], row["ci_high"], reference=row["dev_accuracy"]
                ),
                "dev_bar": interval_bar(row["dev_accuracy"], row["dev_ci_low"], row["dev_ci_high"]),
            }
            for row in data["field_accuracy"]
        ],
        "bundles": {e["id"]: e["label"] for e in data["selectors"]["exports"]},
        "device_names": {d["id"]: d["name"] for d in data["selectors"]["devices"]},
        "channels": ChannelName.values,
    }
    return render(request, "deployment/monitoring_page.html", context, status=400 if error else 200)


@require_POST
def monitoring_refresh(request, slug):
    project = staff_project(request, slug, roles=(Role.MLE,))
    monitoring.queue_monitoring(project)
    messages.success(request, "Monitoring is being computed; reload in a moment.")
    return redirect(reverse("monitoring:page", args=[project.slug]))


@require_POST
def alert_acknowledge(request, slug, alert_id):
    project = staff_project(request, slug)
    if project.role != Role.MLE:
        raise PermissionDenied("Only the project's MLEs acknowledge alerts.")
    alert = get_object_or_404(DriftAlert, project=project, pk=alert_id)
    monitoring.acknowledge(alert, request.user)
    messages.success(request, "Alert acknowledged.")
    return redirect(reverse("monitoring:page", args=[project.slug]))
