"""What the management commands look up by name, with the same error for each."""

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from annotation.models import Project


def project_named(key: str) -> Project:
    """The project with slug ``key`` (or, failing that, numeric id ``key``); CommandError if none."""
    project = Project.objects.filter(slug=key).first()
    if project is None and key.isdigit():
        project = Project.objects.filter(pk=int(key)).first()
    if project is None:
        raise CommandError(f"no project with slug {key!r}")
    return project


def user_named(username: str | None):
    """The user called ``username``; None when no name is given; CommandError if there is none."""
    if not username:
        return None
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"no user {username!r}")
    return user
