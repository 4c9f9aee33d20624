"""The deployment API, included under /api/v1/ from config/urls.py: the MLE's endpoints under
projects/{id}/, the devices' under device/ (only a device token opens those)."""

from django.urls import path

from . import api, device_api

app_name = "deployment_api"

urlpatterns = [
    path("projects/<int:project_id>/devices/", api.ProjectDevices.as_view(), name="project-devices"),
    path("projects/<int:project_id>/devices/<int:device_id>/revoke/", api.DeviceRevoke.as_view(), name="device-revoke"),
    path("projects/<int:project_id>/fleets/", api.ProjectFleets.as_view(), name="project-fleets"),
    path("projects/<int:project_id>/fleets/<int:fleet_id>/revoke/", api.FleetRevoke.as_view(), name="fleet-revoke"),
    path("projects/<int:project_id>/channels/", api.ProjectChannels.as_view(), name="project-channels"),
    path("projects/<int:project_id>/channels/<str:name>/events/", api.ChannelEvents.as_view(), name="channel-events"),
    path(
        "projects/<int:project_id>/channels/<str:name>/publish/", api.ChannelPublish.as_view(), name="channel-publish"
    ),
    path("projects/<int:project_id>/channels/<str:name>/share/", api.ChannelShare.as_view(), name="channel-share"),
    path(
        "projects/<int:project_id>/channels/<str:name>/rollback/",
        api.ChannelRollback.as_view(),
        name="channel-rollback",
    ),
    path(
        "projects/<int:project_id>/channels/<str:name>/settings/",
        api.ChannelSettings.as_view(),
        name="channel-settings",
    ),
    path("device/enrol", device_api.Enrol.as_view(), name="device-enrol"),
    path("device/bundle", device_api.BundleDownload.as_view(), name="device-bundle"),
    path("device/bundle/meta", device_api.BundleMeta.as_view(), name="device-bundle-meta"),
    path("device/telemetry", device_api.Telemetry.as_view(), name="device-telemetry"),
]
