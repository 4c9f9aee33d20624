"""The compare page: two or more ready versions of a project side by side.

SMEs and MLEs read it (non-members 404, labelers 403, as every model page). It reads stored rows
only — metrics, learning histories and per-item evaluation predictions — and pairs the versions
with McNemar's test (training/side_by_side.py); no model is loaded.
"""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_GET

from training import services, side_by_side
from training.models import ModelVersion

from . import curve_charts
from .staff import page_context, staff_project

PICKER_ROWS = 50


@login_required
@require_GET
def model_compare(request, slug):
    project = staff_project(request, slug)
    ids = request.GET.getlist("v")
    # The newest versions, listed oldest first: the form sends the ticked ones in that order, so
    # the reference (the first) is the oldest picked, the model the others try to improve on.
    newest = ModelVersion.objects.ready().filter(project=project).defer("predictions")
    choices = list(newest.order_by("-created_at", "-pk")[:PICKER_ROWS])[::-1]
    context = {**page_context(project), "choices": choices, "picked": ids, "max_compared": side_by_side.MAX_COMPARED}
    error = None
    if ids:
        try:
            versions = side_by_side.chosen_versions(project, ids)
        except services.TrainingError as exc:
            error = exc.message
        else:
            comparison = side_by_side.compare_versions(versions)
            summaries = comparison["versions"]
            reference = summaries[0]
            for s in summaries[1:]:
                s["delta"] = (
                    None
                    if s["accuracy"] is None or reference["accuracy"] is None
                    else (s["accuracy"] - reference["accuracy"])
                )
            pairs = {p["b"]: p for p in comparison["pairs"]}
            context.update(
                comparison=comparison,
                summaries=summaries,
                pairs=[(s, pairs.get(s["id"])) for s in summaries[1:]],
                loss_charts=curve_charts.overlaid_curves([(s["id"], s["history"]) for s in summaries]),
                calibration_chart=curve_charts.overlaid_calibration([(s["id"], s["calibration"]) for s in summaries]),
                class_rows=[
                    {**r, "cells": list(zip(r["recall"], r["f1"], strict=True))} for r in comparison["classes"]
                ],
                slice_rows=[
                    {**r, "cells": list(zip(r["accuracy"], r["gap"], strict=True))} for r in comparison["slices"]
                ],
            )
    context["error"] = error
    return render(request, "frontend/training/compare.html", context, status=400 if error else 200)
