"""Tag every item a page shows under its filters: the "Tag all matching" forms of the review
queue and the item browser post here (SMEs and MLEs; labelers get the 403 page, non-members 404).
The form carries the page (`page`: queue or browser; not `source`, an item browser filter) and
its filters as hidden fields, the tag's name (a new name creates it) and
add or remove; the answer is a redirect back to the page with a message saying what changed.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from annotation.errors import DomainError
from annotation.services import item_filters
from annotation.services import tags as tag_service

from .adjudication_views import FILTERS as QUEUE_FILTERS
from .adjudication_views import _staff_project

SOURCES = {"queue": QUEUE_FILTERS, "browser": item_filters.FILTERS}


def _back(request, project, source):
    fallback = reverse("adjudication:queue" if source == "queue" else "frontend:project-items", args=[project.slug])
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        return target
    return fallback


@login_required
@require_POST
def tag_matching(request, slug):
    project = _staff_project(request.user, slug)
    source = request.POST.get("page", "")
    names = SOURCES.get(source, ())
    filters = {k: request.POST[k] for k in names if request.POST.get(k, "").strip()}
    add = request.POST.get("action", "add") != "remove"
    try:
        result = tag_service.tag_matching(
            project, request.user, source, filters, name=request.POST.get("name", ""), add=add
        )
    except DomainError as exc:
        messages.error(request, f"Nothing tagged: {exc.field or 'tag'}: {exc.message}")
        return redirect(_back(request, project, source))
    tag = result["tag"]
    verb = "now carry" if add else "no longer carry"
    created = " (a new tag)" if result["created"] else ""
    messages.success(
        request,
        f"{result['changed']:,} of {result['matched']:,} matching items {verb} the tag {tag.name}{created}; "
        f"{result['unchanged']:,} already did{'' if add else ' not'}.",
    )
    return redirect(_back(request, project, source))
