"""Channels: which bundle each group of a project's devices runs, and every change to that.

What may be published (the issue leaves it to us):
- the export must be ``ready`` (a rejected int8 export an MLE accepted with a note is ready too),
  with its bundle and SHA-256, of a ready model version of the same project;
- on ``stable``, that version must be the project's promoted model, or one that was promoted
  before (a Promotion names it): stable runs what the team has vouched for;
- on ``canary``, any ready version: trying a model in the field before promoting it is what the
  canary is for.

Every change writes a ChannelEvent in the same transaction, under a row lock on the channel, so
two MLEs changing one channel at once are recorded in the order they took effect.
"""

from django.db import transaction

from annotation.access import acting_user
from training.models import ModelExport, ModelVersion, Promotion

from . import keys
from .errors import Conflict, DeploymentError
from .models import Channel, ChannelEvent, ChannelName

MAX_NOTE = 500


def channels_of(project) -> dict:
    """{name: Channel} with both channels, created empty on first use."""
    found = {c.name: c for c in Channel.objects.filter(project=project).select_related("export__model_version")}
    for name in ChannelName.values:
        if name not in found:
            Channel.objects.get_or_create(project=project, name=name)
            found[name] = Channel.objects.select_related("export__model_version").get(project=project, name=name)
    return found


def assigned_channel(device, channels=None) -> Channel:
    """The channel a device runs: canary when its bucket is below the canary share and canary has a
    bundle; stable otherwise."""
    channels = channels or channels_of(device.project)
    canary = channels[ChannelName.CANARY]
    if canary.export_id is not None and keys.on_canary(device.device_uid, canary.canary_share):
        return canary
    return channels[ChannelName.STABLE]


def _note(note):
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        raise DeploymentError(f"a note has at most {MAX_NOTE} characters; this one has {len(note)}", "note")
    return note


def _locked(channel) -> Channel:
    return Channel.objects.select_for_update().get(pk=channel.pk)


def check_publishable(channel, export) -> None:
    """Raise DeploymentError (field `export`) unless `export` may run on `channel` (module docstring)."""
    version = export.model_version
    if version.project_id != channel.project_id:
        raise DeploymentError(f"export {export.pk} belongs to another project", "export")
    if export.status != ModelExport.Status.READY or not export.sha256 or not export.bundle:
        raise DeploymentError(f"export {export.pk} is {export.status}; only a ready export can be published", "export")
    if version.status != ModelVersion.Status.READY:
        raise DeploymentError(f"model {version.short_id} is {version.status}, not ready", "export")
    if channel.name == ChannelName.STABLE and not (
        version.is_promoted or Promotion.objects.filter(model_version=version, action="promote").exists()
    ):
        raise DeploymentError(
            f"model {version.short_id} has never been promoted; stable runs promoted models (try canary)", "export"
        )


@transaction.atomic
def publish(channel, export, *, user=None, note="") -> ChannelEvent | None:
    """Put `export` on `channel`. Publishing the bundle already there changes nothing (None)."""
    note = _note(note)
    channel = _locked(channel)
    export = ModelExport.objects.select_related("model_version").get(pk=export.pk)
    check_publishable(channel, export)
    if channel.export_id == export.pk:
        return None
    event = ChannelEvent.objects.create(
        channel=channel,
        action=ChannelEvent.Action.PROMOTE,
        export=export,
        previous_export_id=channel.export_id,
        by=acting_user(user),
        note=note,
    )
    channel.export = export
    channel.save(update_fields=["export", "updated_at"])
    return event


@transaction.atomic
def rollback(channel, *, user=None, note="") -> ChannelEvent:
    """Put back the bundle the current one replaced: the `previous_export` of the latest publish of
    the current bundle. Rolling back again walks further back (B replaced A, C replaced B: C → B → A)."""
    note = _note(note)
    channel = _locked(channel)
    if channel.export_id is None:
        raise Conflict(f"the {channel.name} channel has no bundle to roll back", "channel")
    last = (
        ChannelEvent.objects.filter(channel=channel, action=ChannelEvent.Action.PROMOTE, export_id=channel.export_id)
        .order_by("-at", "-pk")
        .first()
    )
    target_id = last.previous_export_id if last is not None else None
    if target_id is not None:
        target = ModelExport.objects.select_related("model_version").get(pk=target_id)
        if target.status != ModelExport.Status.READY:
            target_id = None  # the bundle before is no longer servable: roll back to none
    event = ChannelEvent.objects.create(
        channel=channel,
        action=ChannelEvent.Action.ROLLBACK,
        export_id=target_id,
        previous_export_id=channel.export_id,
        by=acting_user(user),
        note=note,
    )
    channel.export_id = target_id
    channel.save(update_fields=["export", "updated_at"])
    return event


@transaction.atomic
def set_share(channel, share, *, user=None, note="") -> ChannelEvent | None:
    """Set the percentage of devices on canary (the canary channel only)."""
    note = _note(note)
    if channel.name != ChannelName.CANARY:
        raise DeploymentError("the share is set on the canary channel", "channel")
    if isinstance(share, bool) or not isinstance(share, int) or not 0 <= share <= 100:
        raise DeploymentError("share is a whole percentage from 0 to 100", "share")
    channel = _locked(channel)
    if channel.canary_share == share:
        return None
    event = ChannelEvent.objects.create(
        channel=channel,
        action=ChannelEvent.Action.SHARE,
        export_id=channel.export_id,
        previous_export_id=channel.export_id,
        share=share,
        previous_share=channel.canary_share,
        by=acting_user(user),
        note=note,
    )
    channel.canary_share = share
    channel.save(update_fields=["canary_share", "updated_at"])
    return event


def _fraction(value, field):
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise DeploymentError(f"{field} is a number from 0 to 1", field)
    return float(value)


@transaction.atomic
def update_settings(channel, *, sample_rate=None, confidence_threshold=None, user=None, note="") -> ChannelEvent | None:
    """Change how many inputs the server asks the channel's devices for."""
    note = _note(note)
    new = {}
    if sample_rate is not None:
        new["sample_rate"] = _fraction(sample_rate, "sample_rate")
    if confidence_threshold is not None:
        new["confidence_threshold"] = _fraction(confidence_threshold, "confidence_threshold")
    channel = _locked(channel)
    if all(getattr(channel, key) == value for key, value in new.items()):
        return None
    for key, value in new.items():
        setattr(channel, key, value)
    channel.save(update_fields=[*new, "updated_at"])
    return ChannelEvent.objects.create(
        channel=channel,
        action=ChannelEvent.Action.SETTINGS,
        export_id=channel.export_id,
        previous_export_id=channel.export_id,
        channel_settings={"sample_rate": channel.sample_rate, "confidence_threshold": channel.confidence_threshold},
        by=acting_user(user),
        note=note,
    )
