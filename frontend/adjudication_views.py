"""SME pages: the review queue, the item page (keyboard), guideline editor and class operations.

Every page is for the project's SMEs and MLEs; labelers and non-members get 404. Writes go
through `annotation.services.adjudication` / `guidelines` (the item page calls the API).
Everything a labeler wrote (notes) is shown escaped; guideline Markdown is rendered by
`guidelines.render_markdown` (markdown + nh3, marked safe there), the only HTML these pages insert.

Merge, rename, deactivate and publish are confirmed in a <dialog> stating the consequence
(static/frontend/adjudication_confirm.js); the form posts only after Confirm. The server does not
ask for a confirm field (the forms still work without JavaScript, and the API stays as it was).
"""

from urllib.parse import urlencode

import numpy as np
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from annotation.access import STAFF_ROLES, require_role, role_in
from annotation.errors import DomainError, NotFound
from annotation.models import ClassOperation, LabelClass, Project
from annotation.services import adjudication, guidelines
from annotation.services import tags as tag_service
from annotation.services.quality import build_report, latest_report
from training.models import ModelVersion
from training.services import out_of_sample

ACTION_KEYS = {
    "a": "ambiguous",
    "b": "send back",
    "n": "note",
    "j": "next",
    "k": "previous",
    "z": "undo",
    "t": "tag",  # opens the tag box (static/frontend/tagging.js)
}


def _staff_project(user, slug):
    project = Project.objects.visible_to(user).filter(slug=slug).first()
    if project is None:
        raise Http404("No such project.")
    project.role = role_in(user, project)
    require_role(project.role, STAFF_ROLES)
    return project


FILTERS = ("reason", "pair", "slice")
PAGE_SIZE = 50


def _filters(request):
    """The queue's filters as typed (reason, pair, slice), empty ones left out."""
    return {k: request.GET.get(k, "").strip() for k in FILTERS if request.GET.get(k, "").strip()}


def _query(filters, **extra):
    return urlencode({**filters, **{k: v for k, v in extra.items() if v}})


def _describe(filters):
    """The filters in words, for the item page: 'reason: unsure · pair: 3,8'."""
    return " · ".join(f"{k}: {filters[k]}" for k in FILTERS if k in filters)


@login_required
def queue(request, slug):
    """The review queue, a keyset page at a time (`after` / `before` are row cursors). A bad
    filter is named in a message and not applied; the inputs keep what was typed."""
    project = _staff_project(request.user, slug)
    typed = _filters(request)
    filters, errors = dict(typed), {}
    cursor = {"after": request.GET.get("after", ""), "before": request.GET.get("before", "")}
    for _attempt in range(len(FILTERS) + 1):  # drop what is refused, one input at a time
        try:
            result = adjudication.disagreement_queue(project, **filters, **cursor, limit=PAGE_SIZE)
            break
        except DomainError as exc:
            errors[exc.field or "filter"] = exc.message
            if exc.field in cursor:
                cursor = {}
            elif exc.field in filters:
                del filters[exc.field]
            else:
                filters, cursor = {}, {}
    else:
        result = adjudication.disagreement_queue(project, limit=PAGE_SIZE)
    query = _query(filters)
    row_tags = tag_service.tags_by_item([r.item_id for r in result.rows])
    for row in result.rows:
        row.tags = row_tags.get(row.item_id, [])
    return render(
        request,
        "frontend/adjudication/queue.html",
        {
            "project_tags": tag_service.project_tags(project, request.user),
            "project": project,
            "rows": result.rows,
            "counts": [
                (r, adjudication.REASON_LABELS[r], result.counts[r], _query({**filters, "reason": r}))
                for r in adjudication.REASONS
            ],
            "filters": filters,
            "typed": typed,
            "errors": errors,
            "query": query,
            "reasons": adjudication.REASONS,
            "method": result.method,
            "total": result.total,
            "first": result.start + 1,
            "last": result.start + len(result.rows),
            "next_query": _query(filters, after=result.next_cursor) if result.next_cursor else None,
            "prev_query": _query(filters, before=result.prev_cursor) if result.prev_cursor else None,
            "first_query": query if result.prev_cursor else None,
            "undo": adjudication.undoable(project, request.user, request.GET.get("undo")),
        },
    )


@login_required
@require_POST
def undo_page(request, slug, event_id):
    """Undo from the queue page (after the queue's last item): back to the item, to decide again."""
    project = _staff_project(request.user, slug)
    try:
        event = adjudication.undo_decision(project, event_id, request.user)
    except DomainError as exc:
        messages.error(request, f"Could not undo: {exc.message}")
        return redirect("adjudication:queue", project.slug)
    messages.success(request, "Undone. Decide the item again.")
    query = _query(_filters(request))  # the filters ride along in the form's action URL
    url = reverse("adjudication:item", args=[project.slug, event.item_id])
    return redirect(f"{url}?{query}" if query else url)


def _prediction(project, item_id):
    """The promoted model's prediction for the item from the out-of-sample predictions it stored
    when evaluated (dev items, or out-of-fold ones): {model, label, confidence}; {model} alone
    when it did not score this item; None without a promoted model. Reads training, writes nothing."""
    version = ModelVersion.objects.filter(project=project, is_promoted=True).select_related("snapshot").first()
    if version is None or version.snapshot is None:
        return None
    try:
        ids, proba = out_of_sample(version)
    except (DomainError, OSError, ValueError, KeyError):
        return {"model": version.short_id}
    at = np.flatnonzero(ids == item_id)
    classes = version.snapshot.classes or []
    if not at.size or proba.shape[1] != len(classes):
        return {"model": version.short_id}
    k = int(np.argmax(proba[at[0]]))
    return {"model": version.short_id, "label": classes[k]["name"], "confidence": float(proba[at[0], k])}


def _item_context(request, project, item_id):
    """The item page's context under the queue filters of the request (a bad filter is dropped)."""
    filters = _filters(request)
    try:
        context = adjudication.review_context(project, item_id, **filters)
    except NotFound:
        raise Http404("No such item.") from None
    except DomainError:
        filters = {}
        context = adjudication.review_context(project, item_id)
    item = context["item"]
    query = urlencode(filters)
    # Tag events join the decisions in the item's history, in time order.
    history = sorted([*context["history"], *tag_service.tag_history(item)], key=lambda h: h["at"])
    return {
        **context,
        "history": history,
        "item_tags": [it.tag for it in item.item_tags.select_related("tag").order_by("tag__name", "tag_id")],
        "filters": filters,
        "filter_text": _describe(filters),
        "query": query,
        "queue_url": reverse("adjudication:queue", args=[project.slug]) + (f"?{query}" if query else ""),
        "prediction": _prediction(project, item.pk),
        "image_url": reverse("item-file", args=[item.pk, "image"]) if item.image else None,
        "undo_seconds": adjudication.undo_window(),
    }


def _classes(project):
    classes = list(LabelClass.objects.filter(project=project, is_active=True).order_by("order", "name"))
    for c in classes:
        c.key = "" if c.shortcut.lower() in ACTION_KEYS else c.shortcut.lower()
    return classes


@login_required
def item_page(request, slug, item_id):
    project = _staff_project(request.user, slug)
    context = _item_context(request, project, item_id)
    classes = _classes(project)
    config = {
        "project": project.pk,
        "item": item_id,
        "queue": context["queue_ids"],
        "query": context["query"],
        "itemUrl": reverse("adjudication:item", args=[project.slug, 0]),
        "panelUrl": reverse("adjudication:item-panel", args=[project.slug, 0]),
        "queueUrl": context["queue_url"],
        "keys": {c.key: c.name for c in classes if c.key},
        "undoSeconds": context["undo_seconds"],
        "tags": [
            {"id": t.pk, "name": t.name, "colour": t.colour} for t in tag_service.project_tags(project, request.user)
        ],
        "urls": {
            "itemTags": reverse("api:item-tags", args=[project.pk, 0]),
            "itemTag": reverse("api:item-tag-detail", args=[project.pk, 0, 0]),
            "resolve": reverse("api:resolution-create", args=[project.pk]),
            "sendBack": reverse("api:send-back", args=[project.pk]),
            "note": reverse("api:guideline-note", args=[project.pk]),
            "undo": reverse("api:decision-undo", args=[project.pk, 0]),
        },
    }
    return render(
        request,
        "frontend/adjudication/item.html",
        {"project": project, **context, "classes": classes, "config": config},
    )


@login_required
def item_panel(request, slug, item_id):
    """The item's panel alone: what next/previous swap in without a page load."""
    project = _staff_project(request.user, slug)
    return render(
        request, "frontend/adjudication/_panel.html", {"project": project, **_item_context(request, project, item_id)}
    )


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
    published = rows[0]["guideline"] if rows else None
    return render(
        request,
        "frontend/adjudication/guidelines.html",
        {
            "project": project,
            "versions": rows,
            "draft": draft,
            "draft_text": draft.text if draft else latest,
            "draft_html": guidelines.render_markdown(draft.text) if draft else "",
            "next_version": draft.version if draft else (published.version + 1 if published else 1),
            "published": published,
        },
    )


@login_required
@require_POST
def guideline_preview(request, slug):
    """What publishing the posted text would do: the version, the diff against the published
    version and the rendered text; the publish confirmation dialog shows it."""
    project = _staff_project(request.user, slug)
    try:
        preview = guidelines.publish_preview(project, request.POST.get("text", ""))
    except DomainError as exc:
        return HttpResponseBadRequest(exc.message, content_type="text/plain; charset=utf-8")
    return render(request, "frontend/adjudication/_guideline_preview.html", {"project": project, **preview})


def _names(names):
    """'a', 'a and b', 'a, b and c'."""
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _alpha(value):
    return "—" if value is None else f"{value:.3f}"


def merge_consequence(preview):
    """The merge preview in one sentence: '406 labels move from 1 and 7 to 17; alpha 0.646 → 0.683'."""
    moves = preview["moves"]
    total = moves["annotation_labels"] + moves["gold_labels"] + moves["resolution_labels"]
    new = " (a new class)" if preview["target_is_new"] else ""
    return (
        f"{total:,} labels move from {_names(preview['sources'])} to {preview['target']}{new} "
        f"({moves['annotation_labels']:,} labeler labels, {moves['current_annotation_labels']:,} of them current; "
        f"{moves['gold_labels']:,} gold; {moves['resolution_labels']:,} SME decisions); "
        f"Krippendorff's \N{GREEK SMALL LETTER ALPHA} "
        f"{_alpha(preview['alpha_before'])} → {_alpha(preview['alpha_after'])}. "
        f"The merged classes become inactive."
    )


@login_required
def classes_page(request, slug):
    project = _staff_project(request.user, slug)
    preview, preview_error = None, None
    if request.GET.get("sources"):
        try:
            preview = adjudication.merge_preview(project, **_merge_args(request.GET))
            preview["sentence"] = merge_consequence(preview)
        except DomainError as exc:
            preview_error = f"{exc.field}: {exc.message}"
    counts = adjudication.class_counts(project)
    classes = list(LabelClass.objects.filter(project=project).select_related("merged_into"))
    for c in classes:  # what a rename or deactivation touches, for its confirmation
        n = counts.get(c.name, {})
        c.n_labels = sum(n.get(k, 0) for k in ("annotation_labels", "gold_labels", "resolution_labels"))
    return render(
        request,
        "frontend/adjudication/classes.html",
        {
            "project": project,
            "classes": classes,
            "counts": counts,
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
