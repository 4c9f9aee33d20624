"""The MLE's API for devices, fleets and channels of a project.

SMEs and MLEs read; MLEs change. Labelers and non-members get 404 (`project_for`). A new device's
token and a new fleet's secret are in the answer that creates them, and nowhere else ever.
"""

from django.db.models import Count
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import STAFF_ROLES, project_for
from annotation.api.errors import api_error
from annotation.models import Role
from training.models import ModelExport

from . import channels as channel_services
from . import devices as device_services
from .errors import DeploymentError
from .models import ChannelEvent, ChannelName, Device, Fleet

MLE = (Role.MLE,)

# --------------------------------------------------------------------------------------------
# Serializers
# --------------------------------------------------------------------------------------------


class DeviceSerializer(serializers.ModelSerializer):
    fleet = serializers.SlugRelatedField(slug_field="name", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    channel = serializers.SerializerMethodField(help_text="The channel it runs now.")

    class Meta:
        model = Device
        fields = ["id", "name", "device_uid", "fleet", "token_prefix", "channel", "created_by", "created_at",
                  "revoked_at", "last_seen_at"]  # fmt: skip

    def get_channel(self, device) -> str:
        return channel_services.assigned_channel(device, self.context["channels"]).name


class NewDeviceSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    device_uid = serializers.CharField(max_length=100, required=False, help_text="Defaults to the name.")


class FleetSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    devices = serializers.IntegerField(source="device_count", read_only=True)

    class Meta:
        model = Fleet
        fields = ["id", "name", "devices", "created_by", "created_at", "revoked_at"]


class NewFleetSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)


class ExportBriefSerializer(serializers.ModelSerializer):
    model = serializers.SlugRelatedField(source="model_version", slug_field="short_id", read_only=True)

    class Meta:
        model = ModelExport
        fields = ["id", "model", "format", "sha256", "size_bytes"]


class ChannelEventSerializer(serializers.ModelSerializer):
    export = ExportBriefSerializer(read_only=True)
    previous_export = ExportBriefSerializer(read_only=True)
    by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    channel = serializers.CharField(source="channel.name", read_only=True)

    class Meta:
        model = ChannelEvent
        fields = ["id", "channel", "action", "export", "previous_export", "share", "previous_share",
                  "channel_settings", "by", "at", "note"]  # fmt: skip


class ChannelSerializer(serializers.Serializer):
    name = serializers.CharField()
    export = ExportBriefSerializer(allow_null=True)
    canary_share = serializers.IntegerField()
    sample_rate = serializers.FloatField()
    confidence_threshold = serializers.FloatField()
    updated_at = serializers.DateTimeField()


class ChannelNoteSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")


class PublishSerializer(ChannelNoteSerializer):
    export = serializers.IntegerField(min_value=1, max_value=2**63 - 1, help_text="A ready export of this project.")


class ShareSerializer(ChannelNoteSerializer):
    share = serializers.IntegerField(min_value=0, max_value=100, help_text="Percent of devices on canary.")


class SettingsSerializer(ChannelNoteSerializer):
    sample_rate = serializers.FloatField(min_value=0, max_value=1, required=False)
    confidence_threshold = serializers.FloatField(min_value=0, max_value=1, required=False)


class ChannelChangeSerializer(serializers.Serializer):
    channel = ChannelSerializer()
    event = ChannelEventSerializer(allow_null=True, help_text="Null when nothing changed.")


# --------------------------------------------------------------------------------------------
# Views
# --------------------------------------------------------------------------------------------


def _valid(serializer_class, request):
    data = serializer_class(data=request.data)
    data.is_valid(raise_exception=True)
    return data.validated_data


class ProjectDevices(APIView):
    @extend_schema(summary="The devices of a project", responses=DeviceSerializer(many=True))
    def get(self, request, project_id):
        project = project_for(request.user, project_id, roles=STAFF_ROLES)
        rows = Device.objects.filter(project=project).select_related("fleet", "created_by").order_by("name", "pk")
        context = {"channels": channel_services.channels_of(project)}
        return Response(DeviceSerializer(rows, many=True, context=context).data)

    @extend_schema(
        summary="Register a device",
        description="The answer carries the device's token, shown this once (only its hash is kept).",
        request=NewDeviceSerializer,
        responses={201: DeviceSerializer},
    )
    def post(self, request, project_id):
        project = project_for(request.user, project_id, roles=MLE)
        fields = _valid(NewDeviceSerializer, request)
        try:
            issued = device_services.create_device(
                project, name=fields["name"], device_uid=fields.get("device_uid"), user=request.user
            )
        except DeploymentError as exc:
            raise api_error(exc) from exc
        context = {"channels": channel_services.channels_of(project)}
        body = {**DeviceSerializer(issued.obj, context=context).data, "token": issued.secret}
        return Response(body, status=status.HTTP_201_CREATED)


class DeviceRevoke(APIView):
    """Revoke a device's token: its next request is refused (401)."""

    @extend_schema(request=None, responses={200: DeviceSerializer})
    def post(self, request, project_id, device_id):
        project = project_for(request.user, project_id, roles=MLE)
        device = Device.objects.filter(project=project, pk=device_id).first()
        if device is None:
            raise NotFound("No such device in this project.")
        device = device_services.revoke_device(device, user=request.user)
        context = {"channels": channel_services.channels_of(project)}
        return Response(DeviceSerializer(device, context=context).data)


class ProjectFleets(APIView):
    @extend_schema(summary="The fleets of a project", responses=FleetSerializer(many=True))
    def get(self, request, project_id):
        project = project_for(request.user, project_id, roles=STAFF_ROLES)
        rows = Fleet.objects.filter(project=project).select_related("created_by")
        rows = rows.annotate(device_count=Count("devices"))
        return Response(FleetSerializer(rows, many=True).data)

    @extend_schema(
        summary="Create a fleet",
        description="The answer carries the fleet's enrolment secret (`secret`), shown this once. Devices "
        "enrol with it at POST /api/v1/device/enrol.",
        request=NewFleetSerializer,
        responses={201: FleetSerializer},
    )
    def post(self, request, project_id):
        project = project_for(request.user, project_id, roles=MLE)
        fields = _valid(NewFleetSerializer, request)
        try:
            issued = device_services.create_fleet(project, name=fields["name"], user=request.user)
        except DeploymentError as exc:
            raise api_error(exc) from exc
        issued.obj.device_count = 0
        return Response({**FleetSerializer(issued.obj).data, "secret": issued.secret}, status=status.HTTP_201_CREATED)


class FleetRevoke(APIView):
    """Revoke a fleet's enrolment secret; its devices keep their own tokens."""

    @extend_schema(request=None, responses={200: FleetSerializer})
    def post(self, request, project_id, fleet_id):
        project = project_for(request.user, project_id, roles=MLE)
        fleet = Fleet.objects.filter(project=project, pk=fleet_id).annotate(device_count=Count("devices")).first()
        if fleet is None:
            raise NotFound("No such fleet in this project.")
        count = fleet.device_count
        fleet = device_services.revoke_fleet(fleet, user=request.user)
        fleet.device_count = count
        return Response(FleetSerializer(fleet).data)


def _channel(request, project_id, name, roles):
    project = project_for(request.user, project_id, roles=roles)
    if name not in ChannelName.values:
        raise NotFound(f"No channel {name[:20]!r}; the channels are {', '.join(ChannelName.values)}.")
    return channel_services.channels_of(project)[name]


def _events(channel_or_project, limit=None):
    rows = ChannelEvent.objects.select_related(
        "channel", "export__model_version", "previous_export__model_version", "by"
    ).order_by("-at", "-pk")
    return rows.filter(**channel_or_project)[:limit] if limit else rows.filter(**channel_or_project)


class ProjectChannels(APIView):
    @extend_schema(summary="The channels of a project", responses=ChannelSerializer(many=True))
    def get(self, request, project_id):
        project = project_for(request.user, project_id, roles=STAFF_ROLES)
        channels = channel_services.channels_of(project)
        return Response(ChannelSerializer([channels[n] for n in ChannelName.values], many=True).data)


class ChannelEvents(APIView):
    @extend_schema(summary="The history of a channel, newest first", responses=ChannelEventSerializer(many=True))
    def get(self, request, project_id, name):
        channel = _channel(request, project_id, name, STAFF_ROLES)
        return Response(ChannelEventSerializer(_events({"channel": channel}, limit=500), many=True).data)


class ChannelAction(APIView):
    request_serializer = ChannelNoteSerializer

    def change(self, channel, fields, user):
        raise NotImplementedError

    def post(self, request, project_id, name):
        channel = _channel(request, project_id, name, MLE)
        fields = _valid(self.request_serializer, request)
        try:
            event = self.change(channel, fields, request.user)
        except DeploymentError as exc:
            raise api_error(exc) from exc
        channel = channel_services.channels_of(channel.project)[name]
        body = {
            "channel": ChannelSerializer(channel).data,
            "event": ChannelEventSerializer(_events({"pk": event.pk}).get()).data if event else None,
        }
        return Response(body)


class ChannelPublish(ChannelAction):
    """Put a ready export on the channel (stable: of a promoted model; canary: of any ready model)."""

    request_serializer = PublishSerializer

    @extend_schema(request=PublishSerializer, responses={200: ChannelChangeSerializer})
    def post(self, request, project_id, name):
        return super().post(request, project_id, name)

    def change(self, channel, fields, user):
        export = (
            ModelExport.objects.select_related("model_version")
            .filter(pk=fields["export"], model_version__project_id=channel.project_id)
            .first()
        )
        if export is None:
            raise DeploymentError(f"export {fields['export']} is not an export of this project", "export")
        return channel_services.publish(channel, export, user=user, note=fields["note"])


class ChannelShare(ChannelAction):
    """Set the percentage of devices that run the canary bundle (canary channel only)."""

    request_serializer = ShareSerializer

    @extend_schema(request=ShareSerializer, responses={200: ChannelChangeSerializer})
    def post(self, request, project_id, name):
        return super().post(request, project_id, name)

    def change(self, channel, fields, user):
        return channel_services.set_share(channel, fields["share"], user=user, note=fields["note"])


class ChannelRollback(ChannelAction):
    """Put back the bundle the current one replaced (409 when there is none)."""

    @extend_schema(request=ChannelNoteSerializer, responses={200: ChannelChangeSerializer})
    def post(self, request, project_id, name):
        return super().post(request, project_id, name)

    def change(self, channel, fields, user):
        return channel_services.rollback(channel, user=user, note=fields["note"])


class ChannelSettings(ChannelAction):
    """Change the channel's input sampling rate and confidence threshold."""

    request_serializer = SettingsSerializer

    @extend_schema(request=SettingsSerializer, responses={200: ChannelChangeSerializer})
    def post(self, request, project_id, name):
        return super().post(request, project_id, name)

    def change(self, channel, fields, user):
        return channel_services.update_settings(
            channel,
            sample_rate=fields.get("sample_rate"),
            confidence_threshold=fields.get("confidence_threshold"),
            user=user,
            note=fields["note"],
        )
