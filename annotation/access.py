"""Who may see and do what in a project. Every project lookup for a request goes through here."""

from django.core.exceptions import PermissionDenied
from django.http import Http404

from .models import Membership, Project, Role

STAFF_ROLES = (Role.SME, Role.MLE)


def acting_user(user):
    """The user to record as the author of a write; None for an anonymous request or a script."""
    return user if user is not None and user.is_authenticated else None


def role_in(user, project):
    """The user's role in the project, or None. Superusers act as MLEs everywhere."""
    if user.is_superuser:
        return Role.MLE
    return Membership.objects.filter(user=user, project=project).values_list("role", flat=True).first()


def require_role(role, roles):
    """Refuse a member whose `role` is not in `roles`.

    Labelers get 404 for anything meant for SMEs and MLEs: those pages and endpoints do not exist
    for them. An SME refused an MLE-only action gets 403: they can see the thing, not do it.
    """
    if role in roles:
        return
    if role not in STAFF_ROLES:
        raise Http404("No such page.")
    raise PermissionDenied(f"This needs the role {' or '.join(roles)} in the project; you are {role}.")


def project_for(user, project_id, roles=None):
    """The project if the user is a member (404 otherwise), with `.role` set; with `roles`,
    see `require_role`."""
    project = Project.objects.visible_to(user).filter(pk=project_id).first()
    if project is None:
        raise Http404("No such project.")
    project.role = role_in(user, project)
    if roles is not None:
        require_role(project.role, roles)
    return project


def can_create_projects(user):
    """Admins, users granted `annotation.add_project`, and anyone who is an MLE somewhere."""
    return (
        user.is_staff
        or user.has_perm("annotation.add_project")
        or Membership.objects.filter(user=user, role=Role.MLE).exists()
    )
