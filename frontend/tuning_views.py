"""Tuning pages: a project's tuning runs with the launch form, and one run's trials with live
progress and cancel. MLEs only: to anyone else (members or not) the pages do not exist, 404, as
in the API. The pages read stored rows; the search runs on a worker (training/tuning.py)."""

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotation.access import role_in
from annotation.models import Project, Role
from training import services, tuning
from training.models import TuningRun
from training.trainers import TRAINERS

from .staff import page_context

RUN_ROWS = 50
EXAMPLE_SPACES = {
    "sklearn_logreg": {"C": {"low": 0.001, "high": 10, "log": True}, "image_size": 16},
    "keras_cnn": {
        "learning_rate": {"low": 0.0003, "high": 0.01, "log": True},
        "filters": {"values": [16, 32]},
        "dropout": {"low": 0.1, "high": 0.5},
        "epochs": 20,
    },
}


def mle_project(request, slug):
    project = get_object_or_404(Project.objects.visible_to(request.user), slug=slug)
    project.role = role_in(request.user, project)
    if project.role != Role.MLE:
        raise Http404("No such page.")
    return project


def _run(project, run_id):
    return get_object_or_404(
        TuningRun.objects.select_related("best_trial", "model_version", "created_by"), project=project, pk=run_id
    )


def _launch(request, project):
    """Start a run from the form; (run, None) or (None, the error to show)."""
    post = request.POST
    try:
        space = json.loads(post.get("space", "") or "{}")
    except ValueError as exc:
        return None, f"space: not valid JSON ({exc})"
    budget = {}
    for name in ("budget_trials", "budget_minutes"):
        raw = post.get(name, "").strip()
        try:
            budget[name] = int(raw)
        except ValueError:
            return None, f"{name}: a whole number, got {raw!r}"
    try:
        run = tuning.start_tuning(
            project, trainer=post.get("trainer", ""), search=post.get("search", ""), space=space,
            user=request.user, **budget,
        )  # fmt: skip
    except services.TrainingError as exc:
        return None, f"{exc.field}: {exc.message}" if exc.field else exc.message
    return run, None


@login_required
@require_http_methods(["GET", "POST"])
def tuning_list(request, slug):
    project = mle_project(request, slug)
    form_error = None
    if request.method == "POST":
        run, form_error = _launch(request, project)
        if run is not None:
            messages.success(request, f"Tuning run {run.pk} is queued.")
            return redirect(reverse("tuning:tuning-detail", args=[project.slug, run.pk]))
    trainers = [(name, label) for name, label in services.trainer_choices(project)]
    runs = list(
        TuningRun.objects.filter(project=project)
        .select_related("best_trial", "model_version", "created_by")
        .order_by("-created_at", "-pk")[:RUN_ROWS]
    )
    chosen = request.POST.get("trainer") or (trainers[0][0] if trainers else "")
    context = {
        **page_context(project),
        "runs": runs,
        "trainers": trainers,
        "searches": [(t, tuning.SEARCHES[t]) for t, _ in trainers],
        "search_labels": dict(TuningRun.Search.choices),
        "chosen": chosen,
        "chosen_search": request.POST.get("search", ""),
        "space_text": request.POST.get("space") or json.dumps(EXAMPLE_SPACES.get(chosen, {}), indent=1),
        "examples": [(t, json.dumps(EXAMPLE_SPACES[t])) for t, _ in trainers if t in EXAMPLE_SPACES],
        "budget_trials": request.POST.get("budget_trials", 10),
        "budget_minutes": request.POST.get("budget_minutes", 30),
        "limits": tuning.tuning_settings(),
        "form_error": form_error,
    }
    return render(request, "frontend/tuning/list.html", context, status=400 if form_error else 200)


def _shown(value):
    """A hyperparameter as the table shows it: floats to 4 significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@login_required
@require_GET
def tuning_detail(request, slug, run_id):
    project = mle_project(request, slug)
    run = _run(project, run_id)
    trials = list(run.trials.all())
    best = run.best_trial_id
    searched = sorted(k for k, e in run.space.items() if "fixed" not in e)
    resource = tuning.RESOURCE.get(run.search)  # Hyperband's epochs, halving's max_iter: per trial
    columns = searched + ([resource] if resource else [])
    for t in trials:
        t.cells = [_shown(t.params.get(k)) for k in columns]
    context = {
        **page_context(project),
        "run": run,
        "trials": trials,
        "best_id": best,
        "trainer_label": TRAINERS[run.trainer].label if run.trainer in TRAINERS else run.trainer,
        "searched": searched,
        "columns": columns,
        "resource": resource,
        "fixed": sorted((k, e["fixed"]) for k, e in run.space.items() if "fixed" in e and k != resource),
        "status_url": reverse("tuning:tuning-status", args=[project.slug, run.pk]),
    }
    return render(request, "frontend/tuning/detail.html", context)


@login_required
@require_GET
def tuning_status(request, slug, run_id):
    """The run's progress as JSON, for the page's poller (livestatus.js)."""
    project = mle_project(request, slug)
    return JsonResponse(tuning.progress_payload(_run(project, run_id)), headers={"Cache-Control": "no-store"})


@login_required
@require_POST
def tuning_cancel(request, slug, run_id):
    project = mle_project(request, slug)
    run = _run(project, run_id)
    try:
        tuning.cancel(run)
    except services.TrainingError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Tuning run {run.pk} will stop within its current trial.")
    return redirect(reverse("tuning:tuning-detail", args=[project.slug, run.pk]))
