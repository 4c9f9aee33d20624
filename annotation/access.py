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
    """Refuse a member whose `role` is not in `roles` with 403 (PermissionDenied).

    Pages call this after the project lookup has already answered 404 to non-members, so a member
    learns only what their own project has: "you don't have access to this page" beats a 404 that
    reads like a broken link. The API hides staff endpoints from labelers instead (see
    `project_for`).
    """
    if role in roles:
        return
    needed = " or ".join(Role(r).label for r in roles)
    yours = Role(role).label if role else "none"
    raise PermissionDenied(f"This needs the role {needed} in this project; your role is {yours}.")


def _require_api_role(role, roles):
    """The API's rule: labelers get 404 for anything meant for SMEs and MLEs (those endpoints do
    not exist for them); an SME refused an MLE-only action gets 403: they can see the thing, not
    do it."""
    if role in roles:
        return
    if role not in STAFF_ROLES:
        raise Http404("No such page.")
    require_role(role, roles)


def project_for(user, project_id, roles=None):
    """The project if the user is a member (404 otherwise), with `.role` set; with `roles`, the
    API's role check (`_require_api_role`)."""
    # The tuning row rides along: serving the next item reads its gold rate (no extra query).
    project = Project.objects.visible_to(user).select_related("tuning").filter(pk=project_id).first()
    if project is None:
        raise Http404("No such project.")
    project.role = role_in(user, project)
    if roles is not None:
        _require_api_role(project.role, roles)
    return project


def can_create_projects(user):
    """Admins, users granted `annotation.add_project`, and anyone who is an MLE somewhere."""
    return (
        user.is_staff
        or user.has_perm("annotation.add_project")
        or Membership.objects.filter(user=user, role=Role.MLE).exists()
    )
