"""The devices page: a project's devices (last seen, revoke), fleets, and its channels (bundle,
canary share, sampling, history), with the forms that change them.

SMEs and MLEs read; MLEs change. A new device's token or fleet's secret is shown in the answer to
the POST that made it (not stored, not redirected through the session), with `no-store` caching.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods

from annotation.models import Role
from frontend.staff import page_context, staff_project
from training.models import ModelExport

from . import channels as channel_services
from . import devices as device_services
from .errors import DeploymentError
from .models import ChannelEvent, ChannelName, Device, Fleet

HISTORY_ROWS = 20


def _number(raw, kind, field):
    try:
        return kind(raw)
    except (TypeError, ValueError):
        raise DeploymentError(f"{field} must be a number", field) from None


def _act(project, request):
    """One change from the page's forms; returns (message, issued secret or None)."""
    post, user = request.POST, request.user
    action = post.get("action", "")
    note = post.get("note", "")
    if action == "add-device":
        issued = device_services.create_device(
            project, name=post.get("name", ""), device_uid=post.get("device_uid", "").strip() or None, user=user
        )
        return f"Device {issued.obj.name} registered.", issued
    if action == "add-fleet":
        issued = device_services.create_fleet(project, name=post.get("name", ""), user=user)
        return f"Fleet {issued.obj.name} created.", issued
    if action == "revoke-device":
        device = Device.objects.filter(project=project, pk=_number(post.get("device"), int, "device")).first()
        if device is None:
            raise DeploymentError("no such device in this project", "device")
        device_services.revoke_device(device, user=user)
        return f"Device {device.name} revoked: its token is refused from now on.", None
    if action == "revoke-fleet":
        fleet = Fleet.objects.filter(project=project, pk=_number(post.get("fleet"), int, "fleet")).first()
        if fleet is None:
            raise DeploymentError("no such fleet in this project", "fleet")
        device_services.revoke_fleet(fleet, user=user)
        return f"Fleet {fleet.name}'s enrolment secret revoked.", None
    name = post.get("channel", "")
    if name not in ChannelName.values:
        raise DeploymentError("choose the stable or canary channel", "channel")
    channel = channel_services.channels_of(project)[name]
    if action == "publish":
        export = (
            ModelExport.objects.select_related("model_version")
            .filter(pk=_number(post.get("export"), int, "export"), model_version__project=project)
            .first()
        )
        if export is None:
            raise DeploymentError("choose an export of this project", "export")
        event = channel_services.publish(channel, export, user=user, note=note)
        return (f"Export {export.pk} published on {name}." if event else "That bundle is already on the channel."), None
    if action == "share":
        channel_services.set_share(channel, _number(post.get("share"), int, "share"), user=user, note=note)
        return "Canary share changed.", None
    if action == "rollback":
        channel_services.rollback(channel, user=user, note=note)
        return f"The {name} channel rolled back.", None
    if action == "settings":
        channel_services.update_settings(
            channel,
            sample_rate=_number(post.get("sample_rate"), float, "sample_rate"),
            confidence_threshold=_number(post.get("confidence_threshold"), float, "confidence_threshold"),
            user=user,
            note=note,
        )
        return f"Sampling of the {name} channel changed.", None
    raise DeploymentError("unknown action", "action")


@login_required
@require_http_methods(["GET", "POST"])
def devices_page(request, slug):
    project = staff_project(request, slug)
    issued, form_error = None, None
    if request.method == "POST":
        if project.role != Role.MLE:
            raise PermissionDenied("Only the project's MLEs manage devices and channels.")
        try:
            message, issued = _act(project, request)
        except DeploymentError as exc:
            form_error = f"{exc.field}: {exc.message}" if exc.field else exc.message
        else:
            if issued is None:
                messages.success(request, message)
                return redirect(reverse("deployment:devices", args=[project.slug]))
    chans = channel_services.channels_of(project)
    device_rows = list(Device.objects.filter(project=project).select_related("fleet").order_by("name", "pk"))
    for device in device_rows:
        device.channel_name = channel_services.assigned_channel(device, chans).name
    history = {
        name: list(
            ChannelEvent.objects.filter(channel=chans[name])
            .select_related("export__model_version", "previous_export__model_version", "by")
            .order_by("-at", "-pk")[:HISTORY_ROWS]
        )
        for name in ChannelName.values
    }
    ready = list(
        ModelExport.objects.filter(model_version__project=project, status=ModelExport.Status.READY)
        .select_related("model_version")
        .order_by("-created_at", "-pk")[:50]
    )
    context = {
        **page_context(project),
        "channels": [(chans[n], history[n]) for n in ChannelName.values],
        "devices": device_rows,
        "fleets": list(Fleet.objects.filter(project=project).order_by("name")),
        "exports": ready,
        "issued": issued,
        "issued_is_device": isinstance(getattr(issued, "obj", None), Device),
        "form_error": form_error,
    }
    response = render(request, "deployment/devices.html", context, status=400 if form_error else 200)
    if issued is not None:
        add_never_cache_headers(response)  # the secret must not stay in a cache
    return response
