"""The model page's leakage action: an MLE moves one near-duplicate group into one split."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from annotation.models import Role
from training import leakage_service
from training.errors import TrainingError
from training.models import LeakageReport, ModelVersion

from .staff import staff_project


@login_required
@require_POST
def leakage_move(request, slug, model_id, n):
    project = staff_project(request, slug, roles=(Role.MLE,))
    version = ModelVersion.objects.filter(project=project, short_id=model_id).first()
    raw = request.POST.get("report", "")
    report = LeakageReport.objects.filter(project=project, pk=int(raw)).first() if raw.isdigit() else None
    if version is None or report is None:
        raise Http404("No such model or leakage report.")
    try:
        move = leakage_service.move_group(report, n, user=request.user)
    except TrainingError as exc:
        messages.error(request, exc.message)
    else:
        count = len(move.moved)
        messages.success(request, f"Group {n}: {count} item{'s' if count != 1 else ''} moved to {move.to_split}.")
    return redirect(reverse("training:model-detail", args=[slug, model_id]) + "#leakage")
