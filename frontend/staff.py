"""What the SME and MLE pages (models, cycles) share: the project lookup and the page header."""

from django.shortcuts import get_object_or_404

from annotation.access import STAFF_ROLES, require_role, role_in
from annotation.models import Project, Role


def staff_project(request, slug, roles=STAFF_ROLES):
    """The project for a member holding one of ``roles``, with ``.role`` set: 404 for a non-member
    (the project does not exist for them), 403 for a member without the role (the 403 page says
    they have no access; see annotation.access.require_role)."""
    project = get_object_or_404(Project.objects.visible_to(request.user), slug=slug)
    project.role = role_in(request.user, project)
    require_role(project.role, roles)
    return project


def page_context(project):
    """The header's context: the project and the user's role in it."""
    return {
        "nav": "projects",
        "project": project,
        "role": project.role,
        "role_label": Role(project.role).label if project.role else "",
        "is_mle": project.role == Role.MLE,
    }
