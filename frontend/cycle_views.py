"""Cycle pages: a project's retrain-and-sample cycles with a Launch form, live progress and the
learning curve; one cycle's settings, timings and batch.

SMEs and MLEs read; MLEs launch and cancel (annotation.access: non-members and labelers get 404,
an SME 403 on the MLE actions). Writes go through active_learning.services; the pages read stored
rows with a fixed number of queries, however many cycles or batch items there are.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Exists, OuterRef, Q
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from active_learning import error_report, sampling, services
from active_learning.models import STRATEGY_CHOICES, Cycle, CycleSelection
from annotation.models import Annotation, Role
from training.services import trainer_choices
from training.trainers import TRAINERS

from . import charts
from .staff import page_context, staff_project

# The four steps of a cycle as the progress bar names them (the stages between queued and done).
STEPS = (
    (Cycle.Stage.TRAINING, "Train & evaluate"),
    (Cycle.Stage.SCORING, "Score pool"),
    (Cycle.Stage.SELECTING, "Select"),
    (Cycle.Stage.QUEUEING, "Queue"),
)
CYCLE_ROWS = 100
STATUS_IDS = 50
BATCH_ROWS = 200
# What the batch's thumbnails need of each selection row (no item text or metadata).
BATCH_FIELDS = ("position", "strategy", "score", "item__external_id", "item__thumbnail", "queue_entry__is_active")
MIX_PLACEHOLDER = ",".join(f"{name}:{weight:g}" for name, weight in sampling.DEFAULT_MIX)


def _cycle(project, number):
    return get_object_or_404(
        Cycle.objects.select_related("model_version__snapshot", "created_by"), project=project, number=number
    )


def _steps(cycle):
    """The four steps, each done, current, todo, or failed/cancelled where the cycle stopped."""
    stages = [stage for stage, _ in STEPS]
    reached = stages.index(cycle.stage) if cycle.stage in stages else 0
    steps = []
    for i, (stage, label) in enumerate(STEPS):
        if cycle.status == Cycle.Status.DONE or i < reached:
            state = "done"
        elif cycle.stage == stage:
            state = "current" if cycle.is_active else cycle.status
        else:
            state = "todo"
        steps.append({"stage": stage, "label": label, "state": state})
    return steps


def _live(project, cycle):
    """What the progress bar and the row show, and what the status endpoint answers (the cycle
    with ``model_version`` selected)."""
    version = cycle.model_version
    return {
        **services.progress_payload(cycle),
        "status_label": cycle.get_status_display(),
        "steps": [step["state"] for step in _steps(cycle)],
        "accuracy": version.headline_accuracy if version else None,
        "model_url": reverse("training:model-detail", args=[project.slug, version.short_id]) if version else None,
    }


def _with_progress(project, cycle):
    cycle.live = _live(project, cycle)
    cycle.steps = _steps(cycle)
    return cycle


def _whole_number(text):
    """The number in ``text``, or the text itself for the service to refuse by name."""
    try:
        return int(text)
    except ValueError:
        return text


def _launch_form(post, config):
    """The launch form as (values to show again, keyword arguments for services.launch). A blank
    batch size is the default; one that is not a whole number goes to the service as typed, and
    the service names the problem. Weights count only for the mix."""
    values = {
        "strategy": post.get("strategy", "mix"),
        "batch_size": post.get("batch_size", "").strip(),
        "trainer": post.get("trainer", ""),
        "weights": post.get("weights", "").strip(),
        "review_top_k": bool(post.get("review_top_k")),
    }
    launch = {
        "strategy": values["strategy"],
        "batch_size": _whole_number(values["batch_size"]) if values["batch_size"] else config["BATCH_SIZE"],
        "trainer": values["trainer"] or None,
        "weights": values["weights"] if values["strategy"] == "mix" else None,
        "review_top_k": values["review_top_k"],
    }
    return values, launch


@login_required
@require_http_methods(["GET", "POST"])
def cycle_list(request, slug):
    project = staff_project(request, slug)
    config = services.cycle_settings()
    choices = trainer_choices(project)
    form = {
        "strategy": "mix",
        "batch_size": str(config["BATCH_SIZE"]),
        "trainer": config["TRAINER"] if any(name == config["TRAINER"] for name, _ in choices) else "",
        "weights": "",
        "review_top_k": False,
    }
    error = None
    if request.method == "POST":
        if project.role != Role.MLE:
            raise PermissionDenied("Only the project's MLEs launch cycles.")
        form, launch = _launch_form(request.POST, config)
        try:
            cycle = services.launch(project, user=request.user, **launch)
        except services.CycleError as exc:
            error = exc
        else:
            what = f"{cycle.get_strategy_display()}, batch {cycle.batch_size}"
            messages.success(request, f"Cycle {cycle.number} launched: {what}.")
            return redirect("cycles:cycle-list", slug=project.slug)
    cycles = [
        _with_progress(project, c)
        for c in Cycle.objects.filter(project=project)
        .select_related("model_version", "created_by")
        .order_by("-number")[:CYCLE_ROWS]
    ]
    context = {
        **page_context(project),
        "cycles": cycles,
        "active": next((c for c in cycles if c.is_active), None),
        "curve_chart": charts.learning_curve(services.learning_curve(project)),
        "strategy_choices": STRATEGY_CHOICES,
        "trainer_choices": choices,
        "form": form,
        "form_error": error.message if error else None,
        "error_field": error.field if error else None,
        "mix_placeholder": MIX_PLACEHOLDER,
        "max_batch": config["MAX_BATCH"],
        "status_url": reverse("cycles:cycle-status", args=[project.slug]),
    }
    status = 200 if error is None else 409 if isinstance(error, services.CycleConflict) else 400
    return render(request, "frontend/cycles/cycle_list.html", context, status=status)


@login_required
@require_GET
def cycle_status(request, slug):
    """{"cycles": [{id, number, status, stage, stage_label, progress, steps, selected, accuracy,
    model, model_url, error}]} for the cycle ids in ``?ids=1,2`` (at most 50), or for every
    queued or running cycle."""
    project = staff_project(request, slug)
    cycles = Cycle.objects.filter(project=project).select_related("model_version")
    ids = [int(part) for part in request.GET.get("ids", "").split(",") if part.strip().isdigit()][:STATUS_IDS]
    cycles = cycles.filter(pk__in=ids) if ids else cycles.filter(status__in=Cycle.ACTIVE)
    payload = [_live(project, c) for c in cycles.order_by("-number")[:STATUS_IDS]]
    return JsonResponse({"cycles": payload}, headers={"Cache-Control": "no-store"})


def _labeled_selections(cycle):
    """The cycle's batch rows, each with ``is_labeled``: the item is finished or has a current label."""
    current = Annotation.objects.filter(item=OuterRef("item_id"), is_current=True)
    return CycleSelection.objects.filter(cycle=cycle).annotate(is_labeled=Q(item__queue_done=True) | Q(Exists(current)))


def _strategy_rows(cycle, labeled_by_strategy):
    """The batch by strategy: count, share, score min/mean/max (from the summary), labeled so far."""
    summary = cycle.summary or {}
    selected = summary.get("selected") or 0
    rows = []
    for name, block in (summary.get("by_strategy") or {}).items():
        n = block.get("n", 0)
        rows.append(
            {
                "strategy": name,
                "n": n,
                "share": n / selected if selected else None,
                "min": block.get("min"),
                "mean": block.get("mean"),
                "max": block.get("max"),
                "labeled": labeled_by_strategy.get(name, 0),
            }
        )
    return rows


@login_required
@require_GET
def cycle_detail(request, slug, number):
    project = staff_project(request, slug)
    cycle = _with_progress(project, _cycle(project, number))
    selections = _labeled_selections(cycle)
    labeled_by_strategy = {
        row["strategy"]: row["labeled"]
        for row in selections.order_by().values("strategy").annotate(labeled=Count("pk", filter=Q(is_labeled=True)))
    }
    batch = Paginator(
        selections.select_related("item", "queue_entry").only(*BATCH_FIELDS).order_by("position"),
        BATCH_ROWS,
    ).get_page(request.GET.get("page"))
    timings = cycle.timings or {}
    context = {
        **page_context(project),
        "cycle": cycle,
        "summary": cycle.summary or {},
        "weights": [(name, weight) for name, weight in cycle.weights],
        "trainer_label": TRAINERS[cycle.trainer].label if cycle.trainer in TRAINERS else cycle.trainer,
        "timing_rows": [(label, timings.get(stage)) for stage, label in STEPS if stage in timings],
        "timing_total": sum(v for v in timings.values() if isinstance(v, int | float)),
        "strategy_rows": _strategy_rows(cycle, labeled_by_strategy),
        "labeled": sum(labeled_by_strategy.values()),
        "batch": batch,
        "curve_chart": charts.learning_curve(services.learning_curve(project), highlight=cycle.number),
        "status_url": reverse("cycles:cycle-status", args=[project.slug]),
        "error_model": error_report.cycle_report(cycle),
    }
    return render(request, "frontend/cycles/cycle_detail.html", context)


@login_required
@require_POST
def cycle_cancel(request, slug, number):
    """Cancel a queued or running cycle (MLEs); back to the page the button was on."""
    project = staff_project(request, slug, roles=(Role.MLE,))
    cycle = _cycle(project, number)
    try:
        services.cancel(cycle, user=request.user)
    except services.CycleError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Cycle {cycle.number} cancelled; the labeling queue is as it was.")
    if request.POST.get("next") == "detail":
        return redirect("cycles:cycle-detail", slug=project.slug, number=cycle.number)
    return redirect("cycles:cycle-list", slug=project.slug)
