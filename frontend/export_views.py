"""The project's dataset-export page (SMEs and MLEs): start an export, watch it, download it.

The form is checked by the API's own serializer (annotation/api/dataset_exports.py) and the export
made by the same service call as the API's, so the page and the API accept and refuse the same
things. Labelers and non-members get 404: for them the page does not exist.
"""

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render

from annotation.access import STAFF_ROLES, role_in
from annotation.api.dataset_exports import DatasetExportCreateSerializer
from annotation.errors import DomainError
from annotation.models import DatasetExport, LabelClass, Project, Role, Split
from annotation.services import dataset_export as service

LIST_ROWS = 50
BOOLEANS = ("include_labels", "include_history", "include_predictions", "pseudonymize", "only_final")
FORMAT_LABELS = dict(DatasetExport.Format.choices)


def _staff_project(request, slug):
    project = get_object_or_404(Project.objects.visible_to(request.user), slug=slug)
    role = role_in(request.user, project)
    if role not in STAFF_ROLES:
        raise Http404("No such page.")
    return project, role


def _form_data(post) -> dict:
    """The form as the API's JSON: checkboxes to booleans, lists from repeated fields, the slices
    from one text box (comma separated), blanks left out."""
    data = {"format": post.get("format", "")}
    for name in BOOLEANS:
        if post.get(name):
            data[name] = True
    for name in ("split", "source", "label_class"):
        values = [v for v in post.getlist(name) if v]
        if values:
            data[name] = values
    if post.get("consensus"):
        data["consensus"] = post["consensus"]
    if post.get("min_confidence", "").strip():
        data["min_confidence"] = post["min_confidence"].strip()
    slices = [s.strip() for s in post.get("slice", "").split(",") if s.strip()]
    if slices:
        data["slice"] = slices
    return data


def _errors(detail) -> dict:
    return {field: " ".join(str(m) for m in messages) for field, messages in detail.items()}


def _summary(options: dict) -> str:
    """The options that differ from the defaults, in a few words."""
    parts = []
    for name, default in service.DEFAULT_OPTIONS.items():
        value = options.get(name, default)
        if value == default:
            continue
        if isinstance(value, bool):
            parts.append(name.replace("_", " "))
        elif isinstance(value, list):
            parts.append(f"{name.replace('_', ' ')}: {', '.join(map(str, value))}")
        else:
            parts.append(f"{name.replace('_', ' ')}: {value}")
    return "; ".join(parts) or "everything"


@login_required
def export_page(request, slug):
    project, role = _staff_project(request, slug)
    errors, posted = {}, None
    if request.method == "POST":
        posted = _form_data(request.POST)
        form = DatasetExportCreateSerializer(data=posted)
        if form.is_valid():
            options = dict(form.validated_data)
            fmt = options.pop("format")
            try:
                service.create_export(project, fmt, options, user=request.user)
            except DomainError as exc:
                errors = {exc.field or "form": exc.message}
            else:
                return redirect(request.path)  # the same page, now listing it (namespace-agnostic)
        else:
            errors = _errors(form.errors)
    exports = list(
        DatasetExport.objects.filter(project=project)
        .select_related("created_by")
        .order_by("-created_at", "-pk")[:LIST_ROWS]
    )
    for export in exports:
        export.summary = _summary(export.options)
        export.format_label = FORMAT_LABELS.get(export.format, export.format)
        export.active = export.status in (DatasetExport.Status.QUEUED, DatasetExport.Status.RUNNING)
    classes = list(
        LabelClass.objects.filter(project=project, merged_into__isnull=True)
        .order_by("order", "name")
        .values_list("name", flat=True)
    )
    posted = posted or {}
    return render(
        request,
        "frontend/exports/export_page.html",
        {
            "project": project,
            "role": role,
            "role_label": Role(role).label if role else "",
            "exports": exports,
            "errors": errors,
            "posted": posted,
            "formats": DatasetExport.Format.choices,
            "splits": Split.values,
            "sources": service.SOURCES,
            "consensus_methods": service.CONSENSUS_METHODS,
            "classes": classes,
            "inline_max": service.INLINE_MAX_ITEMS,
        },
        status=400 if errors else 200,
    )
