"""Devices and fleets: register, enrol, revoke. The only code that writes them.

A token or enrolment secret is returned once, by the call that makes it, and never stored: the
caller shows it to the MLE (page) or returns it to the device (enrol) and forgets it.
"""

from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from annotation.access import acting_user
from annotation.text_rules import control_character_problem

from . import keys
from .errors import Conflict, DeploymentError
from .models import Device, Fleet

MAX_NAME = 100


@dataclass
class Issued:
    """A new device or fleet and its secret, which exists only here."""

    obj: object
    secret: str


def _checked_text(value, field):
    value = (value or "").strip() if isinstance(value, str) else value
    if not isinstance(value, str) or not value:
        raise DeploymentError(f"{field} is required", field)
    if len(value) > MAX_NAME:
        raise DeploymentError(f"{field} has at most {MAX_NAME} characters; this one has {len(value)}", field)
    problem = control_character_problem(value)
    if problem:
        raise DeploymentError(f"{field} {problem}", field)
    return value


def _new_device(project, *, name, device_uid, fleet=None, user=None):
    name = _checked_text(name, "name")
    device_uid = _checked_text(device_uid, "device_uid")
    token = keys.new_secret()
    try:
        with transaction.atomic():
            device = Device.objects.create(
                project=project,
                fleet=fleet,
                name=name,
                device_uid=device_uid,
                token_hash=keys.secret_hash(token),
                token_prefix=keys.prefix(token),
                created_by=acting_user(user),
            )
    except IntegrityError:
        raise Conflict(
            f"a device with the id {device_uid!r} is already enrolled in this project; revoke it first", "device_uid"
        ) from None
    return Issued(device, token)


def create_device(project, *, name, device_uid=None, user=None) -> Issued:
    """Register one device (an MLE). Without `device_uid` the name is the id."""
    return _new_device(project, name=name, device_uid=device_uid or name, user=user)


def revoke_device(device, *, user=None) -> Device:
    """Revoke a device's token: its next request is 401 (authentication reads revoked_at each time)."""
    Device.objects.filter(pk=device.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    device.refresh_from_db()
    return device


def create_fleet(project, *, name, user=None) -> Issued:
    name = _checked_text(name, "name")
    secret = keys.new_secret()
    try:
        with transaction.atomic():
            fleet = Fleet.objects.create(
                project=project, name=name, enrolment_secret_hash=keys.secret_hash(secret), created_by=acting_user(user)
            )
    except IntegrityError:
        raise Conflict(f"this project already has a fleet called {name!r}", "name") from None
    return Issued(fleet, secret)


def revoke_fleet(fleet, *, user=None) -> Fleet:
    """The fleet's secret enrols no more devices; devices already enrolled keep their own tokens."""
    Fleet.objects.filter(pk=fleet.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    fleet.refresh_from_db()
    return fleet


def enrol(secret, *, device_uid, name=None) -> Issued:
    """A device enrols itself with its fleet's shared secret and gets a token of its own."""
    if not isinstance(secret, str) or not secret:
        raise DeploymentError("secret is required", "secret")
    fleet = Fleet.objects.select_related("project").filter(enrolment_secret_hash=keys.secret_hash(secret)).first()
    if fleet is None or fleet.revoked_at is not None:
        # One answer for both: a revoked secret must not tell a caller it was ever valid.
        raise DeploymentError("the enrolment secret is not valid", "secret")
    return _new_device(fleet.project, name=name or device_uid, device_uid=device_uid, fleet=fleet)
