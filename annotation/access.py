"""Who may see and do what in a project. Every project lookup for a request goes through here."""

from django.http import Http404
from rest_framework.exceptions import PermissionDenied

from .models import Membership, Project, Role

STAFF_ROLES = (Role.SME, Role.MLE)


def role_in(user, project):
    """The user's role in the project, or None. Superusers act as MLEs everywhere."""
    if user.is_superuser:
        return Role.MLE
    return Membership.objects.filter(user=user, project=project).values_list("role", flat=True).first()


def project_for(user, project_id, roles=None):
    """The project if the user is a member (404 otherwise), with `.role` set.

    With `roles`, a member holding another role gets 403: they know the project exists.
    """
    project = Project.objects.visible_to(user).filter(pk=project_id).first()
    if project is None:
        raise Http404("No such project.")
    project.role = role_in(user, project)
    if roles is not None and project.role not in roles:
        raise PermissionDenied(f"This needs the role {' or '.join(roles)} in the project; you are {project.role}.")
    return project


def can_create_projects(user):
    """Admins, users granted `annotation.add_project`, and anyone who is an MLE somewhere."""
    return (
        user.is_staff
        or user.has_perm("annotation.add_project")
        or Membership.objects.filter(user=user, role=Role.MLE).exists()
    )
