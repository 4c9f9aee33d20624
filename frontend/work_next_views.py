"""The model page's "where to work next" section (frontend/training/_work_next.html) and its
"Label more like this" button.

The table is the one evaluation stored in the version's metrics (training/worknext.py); the page
sorts it server-side by ``?sort=<column>&order=asc|desc``. Tags added after the evaluation appear
at the next training: the table is not recomputed here (the page says so).

"Label more like this" (MLEs) launches a cycle with the model's trainer whose pool is cut to the
row's slice or tag, or to the unlabeled items nearest to the tag's items in the model's
embedding (active_learning/restriction.py), and opens the new cycle's page.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from active_learning import restriction, services
from annotation.models import Role
from training import worknext as W
from training.models import ModelVersion

from . import charts
from .staff import staff_project

COLUMNS = [
    ("slice", "Slice or tag", ""),
    ("share", "Share of data", "share of all the project's items"),
    ("error_share", "Share of errors", "share of the model's errors on the evaluated items"),
    ("accuracy", "Model", "model accuracy on the slice's evaluated items, 95% Wilson interval"),
    ("hlp", "HLP", "human-level performance with the label-quality report's interval"),
    ("gap", "Gap", "HLP - model accuracy"),
    ("priority", "Priority", "gap x share of data"),
]


class BadSort(ValueError):
    pass


def _sorting(params):
    """(column, descending) from ``?sort=&order=``; BadSort names the parameter at fault."""
    column = params.get("sort") or "priority"
    order = params.get("order") or ""
    if column not in W.SORT_COLUMNS:
        raise BadSort(f"sort: cannot sort by {column!r}; choose one of {', '.join(W.SORT_COLUMNS)}")
    if order not in ("", "asc", "desc"):
        raise BadSort("order: must be asc or desc")
    return column, (W.SORT_COLUMNS[column] if not order else order == "desc")


def work_next_context(request, project, version, metrics) -> dict:
    """The partial's context (``work_next``), and ``status`` 400 for a bad ``?sort=``."""
    table = (metrics or {}).get("work_next")
    if table is None:
        return {}
    error = None
    try:
        column, descending = _sorting(request.GET)
    except BadSort as exc:
        error, column, descending = str(exc), "priority", True
    rows = []
    for row in W.sort_rows(table.get("rows") or [], column, descending):
        row = dict(row)
        row["bar"] = charts.interval_bar(
            row.get("accuracy"),
            row.get("acc_low"),
            row.get("acc_high"),
            reference=row.get("hlp"),
            label=f"model {_pct(row.get('accuracy'))}, HLP {_pct(row.get('hlp'))}",
        )
        rows.append(row)
    headers = []
    for name, label, title in COLUMNS:
        now_desc = descending if name == column else W.SORT_COLUMNS[name]
        next_desc = not descending if name == column else W.SORT_COLUMNS[name]
        headers.append(
            {
                "name": name,
                "label": label,
                "title": title,
                "active": name == column,
                "arrow": ("↓" if now_desc else "↑") if name == column else "",
                "href": f"?sort={name}&order={'desc' if next_desc else 'asc'}#work-next",
            }
        )
    context = {
        "work_next": {
            "rows": rows,
            "rule": table.get("rule") or W.RULE,
            "headers": headers,
            "errors": table.get("errors"),
            "evaluated": table.get("evaluated"),
            "error": error,
            "launch_url": reverse("training:model-work-next-launch", args=[project.slug, version.short_id]),
            "can_launch": project.role == Role.MLE,
        }
    }
    if error:
        context["status"] = 400
    return context


def _pct(value):
    return "n/a" if value is None else f"{value:.1%}"


@login_required
@require_POST
def work_next_launch(request, slug, model_id):
    """Launch a cycle restricted to one row of the table; to the cycle's page, or back with the
    reason the launch was refused."""
    project = staff_project(request, slug, roles=(Role.MLE,))
    version = get_object_or_404(ModelVersion, project=project, short_id=model_id)
    key, value = request.POST.get("key", ""), request.POST.get("value", "")
    mode = request.POST.get("mode", "members")
    if key.startswith("tag:"):
        raw = {"kind": "tag", "tag": key[len("tag:") :]}
        if mode == "nearest":
            raw["nearest"] = True
    else:
        raw = {"kind": "slice", "key": key, "value": value}
    config = services.cycle_settings()
    try:
        cycle = services.launch(
            project,
            strategy="mix",
            batch_size=int(config["BATCH_SIZE"]),
            trainer=version.trainer,
            user=request.user,
            pool_restriction=raw,
        )
    except services.CycleError as exc:
        messages.error(request, f"Could not launch a cycle for {key}: {exc.message}")
        return redirect(reverse("training:model-detail", args=[project.slug, version.short_id]) + "#work-next")
    messages.success(request, f"Cycle {cycle.number} launched on {restriction.describe(cycle.pool_restriction)}.")
    return redirect("cycles:cycle-detail", slug=project.slug, number=cycle.number)
