"""Labeling pages: the keyboard-first labeling page, "My work" and the guideline's "read" mark.

The labeling page renders the first item itself; from then on `labeling.js` talks to the
labeling API (next item, submit, skip, undo). Everything shown to a labeler comes from
`annotation.services.labeling`, which reveals no other labeler's work and no gold.
"""

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, IntegerField, OuterRef, Prefetch, Subquery
from django.db.models.functions import Coalesce, Left
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from annotation.access import role_in
from annotation.api.labeling_serializers import ServedItemSerializer
from annotation.errors import DomainError
from annotation.models import Annotation, LabelClass, Membership, Project, TaskType
from annotation.services import labeling
from annotation.services.guidelines import render_markdown

# Keys the labeling page keeps for itself; a class with one of these shortcuts is picked by click or Tab.
COMMAND_KEYS = {"u": "unsure", "s": "skip", "z": "undo"}
TINY_IMAGE_PIXELS = 128  # images this small are scaled up with hard pixel edges
MY_WORK_PAGE_SIZE = 25
SNIPPET_CHARS = 160


def _project(user, slug):
    """The project if the user is a member (superusers: any), else 404; with `.role` set."""
    project = Project.objects.visible_to(user).filter(slug=slug).first()
    if project is None:
        raise Http404("No such project.")
    project.role = role_in(user, project)
    return project


def _classes(project):
    classes = list(project.label_classes.filter(is_active=True, merged_into__isnull=True).order_by("order", "name"))
    for label_class in classes:
        key = label_class.shortcut.lower()
        label_class.key = "" if key in COMMAND_KEYS else key
    return classes


@login_required
def label(request, slug):
    user = request.user
    project = _project(user, slug)
    try:
        served = labeling.next_item(project, user)
    except DomainError:  # the queue was busy beyond its retries: the page offers "Check again"
        served = None
        messages.warning(request, "The queue is busy right now; check again in a moment.")
    item = ServedItemSerializer(served, context={"request": request, "project": project}).data if served else None
    guideline = labeling.current_guideline(project)
    seen = Membership.objects.filter(user=user, project=project).values_list("last_seen_guideline_version", flat=True)
    seen = seen.first() if user.is_superuser else seen.get()
    classes = _classes(project)
    progress = labeling.progress(project, user)
    config = {
        "project": project.pk,
        "kind": project.data_kind,
        "taskType": project.task_type,
        "undoSeconds": labeling.config()["UNDO_SECONDS"],
        "tinyImagePixels": TINY_IMAGE_PIXELS,
        "guidelineVersion": guideline.version if guideline else None,
        "urls": {
            "next": reverse("api:next-item", args=[project.pk]),
            "annotations": reverse("api:annotation-list", args=[project.pk]),
            "skips": reverse("api:skip-create", args=[project.pk]),
            "undo": reverse("api:annotation-undo", args=[project.pk, 0]),
        },
        # The item's text is in the page once, in the stage; the script reads it from there.
        "item": {key: value for key, value in item.items() if key != "text"} if item else None,
        "progress": progress,
    }
    context = {
        "project": project,
        "item": item,
        "tiny": bool(item and item["width"] and item["height"])
        and max(item["width"], item["height"]) <= TINY_IMAGE_PIXELS,
        "classes": classes,
        "multi": project.task_type == TaskType.MULTI_LABEL,
        "guideline": guideline,
        "guideline_html": render_markdown(guideline.text) if guideline else "",
        "guideline_is_new": bool(guideline) and (seen or 0) < guideline.version and not user.is_superuser,
        "progress": progress,
        "max_note": labeling.config()["MAX_NOTE_CHARS"],
        "undo_seconds": labeling.config()["UNDO_SECONDS"],
        "config": config,
    }
    return render(request, "frontend/labeling/label.html", context)


@login_required
def my_work(request, slug):
    user = request.user
    project = _project(user, slug)
    versions = (
        Annotation.objects.filter(item=OuterRef("item"), labeler=user)
        .order_by()
        .values("item")
        .annotate(n=Count("pk"))
        .values("n")
    )
    annotations = (
        Annotation.objects.filter(labeler=user, item__project=project, is_current=True)
        .select_related("item")
        .only("pk", "unsure", "note", "created_at", "item", "item__thumbnail", "item__image", "item__project_id")
        .annotate(
            versions=Coalesce(Subquery(versions, output_field=IntegerField()), 1),
            snippet=Left("item__text", SNIPPET_CHARS + 1),
        )
        .prefetch_related(Prefetch("labels", queryset=LabelClass.objects.order_by("order", "name")))
        .order_by("-created_at", "-pk")
    )
    page = Paginator(annotations, MY_WORK_PAGE_SIZE).get_page(request.GET.get("page"))
    for annotation in page:
        annotation.label_names = {c.name for c in annotation.labels.all()}
        annotation.client_id_for_edit = uuid.uuid4()
    context = {
        "project": project,
        "page": page,
        "classes": _classes(project),
        "multi": project.task_type == TaskType.MULTI_LABEL,
        "max_note": labeling.config()["MAX_NOTE_CHARS"],
        "snippet_chars": SNIPPET_CHARS,
    }
    return render(request, "frontend/labeling/my_work.html", context)


def _page_number(raw):
    try:
        return max(1, int(raw))
    except (TypeError, ValueError):
        return 1


@login_required
@require_POST
def change_label(request, slug, item_id):
    """An edit from My work: a new version of the user's label (the old one stays in history)."""
    project = _project(request.user, slug)
    back = f"{reverse('labeling:my-work', args=[slug])}?page={_page_number(request.POST.get('page'))}"
    try:
        client_id = uuid.UUID(request.POST.get("client_id", ""))
    except ValueError:
        messages.error(request, "Not changed: the form was incomplete; reload the page and try again.")
        return redirect(back)
    if not Annotation.objects.filter(item_id=item_id, labeler=request.user, item__project=project).exists():
        raise Http404("You have not labelled that item.")
    try:
        annotation, _ = labeling.submit(
            project,
            request.user,
            item_id=item_id,
            labels=request.POST.getlist("labels"),
            unsure=request.POST.get("unsure") == "on",
            note=request.POST.get("note", ""),
            client_id=client_id,
        )
    except DomainError as exc:
        messages.error(request, f"Not changed ({exc.field or 'label'}): {exc.message}.")
    else:
        messages.success(request, f"Item {item_id} is now labelled {', '.join(annotation.label_names)}.")
    return redirect(back)


@login_required
@require_POST
def guideline_seen(request, slug):
    """Mark a guideline version as read. The labeling page's script asks for JSON (Esc, or the
    button, without a page load that would cut off labels on their way); a plain form redirects."""
    project = _project(request.user, slug)
    wants_json = request.headers.get("Accept", "").startswith("application/json")
    version = request.POST.get("version", "0")
    try:
        labeling.mark_guideline_seen(project, request.user, version)
    except (DomainError, ValueError):
        if wants_json:
            return JsonResponse({"version": ["That guideline version does not exist."]}, status=400)
        messages.error(request, "That guideline version does not exist.")
    else:
        if wants_json:
            return JsonResponse({"version": int(version)})
    return redirect("labeling:label", slug=slug)
