"""SME pages: the review queue, the item page (keyboard), guideline editor and class operations.

Every page is for the project's SMEs and MLEs; labelers and non-members get 404. Writes go
through `annotation.services.adjudication` / `guidelines` (the item page calls the API).
Everything a labeler wrote (notes) is shown escaped; guideline Markdown is rendered by
`guidelines.render_markdown` (markdown + nh3, marked safe there), the only HTML these pages insert.
"""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from annotation.access import STAFF_ROLES, require_role, role_in
from annotation.errors import DomainError
from annotation.models import ClassOperation, LabelClass, Project
from annotation.services import adjudication, guidelines
from annotation.services.quality import build_report, latest_report

ACTION_KEYS = {"a": "ambiguous", "b": "send back", "n": "note", "j": "next", "k": "previous"}


def _staff_project(user, slug):
    project = Project.objects.visible_to(user).filter(slug=slug).first()
    if project is None:
        raise Http404("No such project.")
    project.role = role_in(user, project)
    require_role(project.role, STAFF_ROLES)
    return project


def _filters(request):
    return {k: request.GET.get(k, "").strip() for k in ("reason", "pair", "slice") if request.GET.get(k, "").strip()}


def _queue(request, project):
    filters = _filters(request)
    try:
        return adjudication.disagreement_queue(project, **filters), filters, None
    except DomainError as exc:
        return adjudication.disagreement_queue(project), {}, f"{exc.field}: {exc.message}"


@login_required
def queue(request, slug):
    project = _staff_project(request.user, slug)
    result, filters, error = _queue(request, project)
    if error:
        messages.error(request, error)
    query = urlencode(filters)
    return render(
        request,
        "frontend/adjudication/queue.html",
        {
            "project": project,
            "rows": result.rows,
            "counts": [(r, adjudication.REASON_LABELS[r], result.counts[r]) for r in adjudication.REASONS],
            "filters": filters,
            "query": query,
            "reasons": adjudication.REASONS,
        },
    )


def _item_context(project, item_id):
    try:
        detail = adjudication.item_detail(project, item_id)
    except DomainError:
        raise Http404("No such item.") from None
    item = detail["item"]
    votes = {}
    for a in detail["annotations"]:
        for c in a.labels.all():
            votes[c.name] = votes.get(c.name, 0) + 1
    total = sum(votes.values())
    top = max(votes, key=votes.get) if votes else None
    return {
        **detail,
        "votes": sorted(votes.items(), key=lambda kv: -kv[1]),
        "consensus": top,
        "confidence": (votes[top] / total) if top else None,
        "image_url": reverse("item-file", args=[item.pk, "image"]) if item.image else None,
    }


def _classes(project):
    classes = list(LabelClass.objects.filter(project=project, is_active=True).order_by("order", "name"))
    for c in classes:
        c.key = "" if c.shortcut.lower() in ACTION_KEYS else c.shortcut.lower()
    return classes


@login_required
def item_page(request, slug, item_id):
    project = _staff_project(request.user, slug)
    result, filters, _error = _queue(request, project)
    ids = [r.item_id for r in result.rows]
    context = _item_context(project, item_id)
    classes = _classes(project)
    config = {
        "project": project.pk,
        "item": item_id,
        "queue": ids,
        "query": urlencode(filters),
        "itemUrl": reverse("adjudication:item", args=[project.slug, 0]),
        "panelUrl": reverse("adjudication:item-panel", args=[project.slug, 0]),
        "queueUrl": reverse("adjudication:queue", args=[project.slug]),
        "keys": {c.key: c.name for c in classes if c.key},
        "urls": {
            "resolve": reverse("api:resolution-create", args=[project.pk]),
            "sendBack": reverse("api:send-back", args=[project.pk]),
            "note": reverse("api:guideline-note", args=[project.pk]),
        },
    }
    return render(
        request,
        "frontend/adjudication/item.html",
        {"project": project, **context, "classes": classes, "config": config, "filters": filters},
    )


@login_required
def item_panel(request, slug, item_id):
    """The item's panel alone: what next/previous swap in without a page load."""
    project = _staff_project(request.user, slug)
    return render(request, "frontend/adjudication/_panel.html", {"project": project, **_item_context(project, item_id)})


@login_required
def guideline_page(request, slug):
    project = _staff_project(request.user, slug)
    if request.method == "POST":
        text = request.POST.get("text", "")
        try:
            if request.POST.get("action") == "publish":
                g = guidelines.publish(project, request.user, text)
                messages.success(request, f"Guideline v{g.version} published.")
            else:
                g = guidelines.save_draft(project, request.user, text)
                messages.success(request, f"Draft v{g.version} saved.")
        except DomainError as exc:
            messages.error(request, exc.message)
        return redirect("adjudication:guidelines", project.slug)
    report = latest_report(project)
    rows = guidelines.versions(project, report.data if report is not None else build_report(project))
    for row in rows:
        row["html"] = guidelines.render_markdown(row["guideline"].text)
    draft = guidelines.draft(project)
    latest = rows[0]["guideline"].text if rows else ""
    return render(
        request,
        "frontend/adjudication/guidelines.html",
        {
            "project": project,
            "versions": rows,
            "draft": draft,
            "draft_text": draft.text if draft else latest,
            "draft_html": guidelines.render_markdown(draft.text) if draft else "",
        },
    )


@login_required
def classes_page(request, slug):
    project = _staff_project(request.user, slug)
    preview, preview_error = None, None
    if request.GET.get("sources"):
        try:
            preview = adjudication.merge_preview(project, **_merge_args(request.GET))
        except DomainError as exc:
            preview_error = f"{exc.field}: {exc.message}"
    return render(
        request,
        "frontend/adjudication/classes.html",
        {
            "project": project,
            "classes": LabelClass.objects.filter(project=project).select_related("merged_into"),
            "counts": adjudication.class_counts(project),
            "operations": ClassOperation.objects.filter(project=project).select_related("actor")[:50],
            "preview": preview,
            "preview_error": preview_error,
            "query": request.GET,
            "preview_sources": request.GET.getlist("sources"),
        },
    )


def _merge_args(data):
    sources = [s for s in data.getlist("sources") if s]
    target = data.get("target") or None
    new_target = (data.get("new_target") or "").strip() or None
    return {"sources": sources, "target": target, "new_target": new_target}


@login_required
@require_POST
def class_action(request, slug):
    project = _staff_project(request.user, slug)
    action = request.POST.get("action")
    try:
        if action == "merge":
            adjudication.merge(project, request.user, **_merge_args(request.POST))
            messages.success(request, "Classes merged.")
        elif action == "rename":
            adjudication.rename_class(
                project, request.user, class_id=request.POST.get("class"), name=request.POST.get("name")
            )
            messages.success(request, "Class renamed.")
        elif action == "add":
            adjudication.add_class(
                project,
                request.user,
                name=request.POST.get("name"),
                is_ambiguity=bool(request.POST.get("is_ambiguity")),
            )
            messages.success(request, "Class added.")
        elif action == "deactivate":
            adjudication.deactivate_class(project, request.user, class_id=request.POST.get("class"))
            messages.success(request, "Class deactivated.")
        else:
            messages.error(request, "Unknown action.")
    except DomainError as exc:
        messages.error(request, f"{exc.field}: {exc.message}")
    return redirect("adjudication:classes", project.slug)
