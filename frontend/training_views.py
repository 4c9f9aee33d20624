"""Model pages: the project's models with a Train form and live progress, and one model's report.

SMEs and MLEs read; MLEs train, promote and roll back. Non-members get 404, labelers 403. The
pages read stored rows (a fixed number of queries) and draw SVG from the stored metrics; they
never import TensorFlow or load a model.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotation.models import Role
from annotation.services.review import request_review
from training import compare, exports, services, side_by_side
from training.api import NoteSerializer, bundle_file, download_response
from training.models import ModelExport, ModelVersion, Promotion
from training.trainers import TRAINERS

from . import charts, curve_charts
from .staff import page_context, staff_project
from .work_next_views import work_next_context

MODEL_ROWS = 100
PROMOTION_ROWS = 10
STATUS_IDS = 50
TOP_K_LISTS = [
    ("train", "confidently_wrong", "Train: confidently wrong", "Often conflicting labels: check them first."),
    ("train", "most_uncertain", "Train: most uncertain", "The model cannot decide between two classes."),
    ("dev", "confidently_wrong", "Dev: confidently wrong", "Where the model fails on items it never trained on."),
    ("dev", "most_uncertain", "Dev: most uncertain", "Borderline items: candidates for the guideline."),
]


def _gallery_title(title, split, kind, cross_validated):
    """Under cross-validation the dev lists and the train list of errors come from held-out folds."""
    if not cross_validated:
        return title
    if split == "train" and kind == "confidently_wrong":
        return f"{title} (out of fold)"
    return title.replace("Dev:", "Held-out folds:")


def _version(project, model_id):
    return get_object_or_404(
        ModelVersion.objects.select_related("snapshot", "created_by"), project=project, short_id=model_id
    )


@login_required
@require_http_methods(["GET", "POST"])
def model_list(request, slug):
    project = staff_project(request, slug)
    choices = services.trainer_choices(project)
    form_error = None
    if request.method == "POST":
        if project.role != Role.MLE:
            raise PermissionDenied("Only the project's MLEs train models.")
        policy = {}
        raw_conf = request.POST.get("min_confidence", "").strip()
        if raw_conf:
            try:
                policy["min_confidence"] = float(raw_conf)
            except ValueError:
                policy["min_confidence"] = raw_conf  # the service names the problem
        if request.POST.get("keep_ambiguity"):
            policy["keep_ambiguity"] = True
        try:
            version = services.start_training(
                project, trainer=request.POST.get("trainer", ""), user=request.user, policy=policy
            )
        except services.TrainingError as exc:
            form_error = exc.message
        else:
            messages.success(request, f"Training of model {version.short_id} has started.")
            return redirect(reverse("training:model-list", args=[project.slug]))
    versions = list(
        ModelVersion.objects.filter(project=project)
        .defer("predictions")  # per-item predictions: only the compare and detail pages read them
        .select_related("snapshot", "created_by")
        .order_by("-created_at", "-pk")[:MODEL_ROWS]
    )
    promotions = list(
        Promotion.objects.filter(project=project)
        .select_related("model_version", "previous", "by")
        .order_by("-at", "-pk")[:PROMOTION_ROWS]
    )
    current = next((v for v in versions if v.is_promoted), None)
    if current is None:  # beyond the rows shown
        current = ModelVersion.objects.filter(project=project, is_promoted=True).first()
    for v in versions:
        if v.is_promoted:
            v.confirm = confirm_rollback(v)
        elif v.status == ModelVersion.Status.READY:
            v.confirm = confirm_promote(v, current)
    context = {
        **page_context(project),
        "versions": versions,
        "current": current,
        "promotions": promotions,
        "trainer_choices": choices,
        "default_min_confidence": services.training_settings()["CONSENSUS_MIN_CONFIDENCE"],
        "form_error": form_error,
        "status_url": reverse("training:model-status", args=[project.slug]),
    }
    return render(request, "frontend/training/model_list.html", context, status=400 if form_error else 200)


def _id_list(raw, convert=str):
    """The ids of ``?ids=a,b``: at most STATUS_IDS, each converted; None if one does not convert."""
    parts = [part.strip() for part in (raw or "").split(",") if part.strip()][:STATUS_IDS]
    try:
        return [convert(part) for part in parts]
    except ValueError:
        return None


def export_payload(export):
    """What the model page polls for one TFLite export."""
    return {
        "id": export.pk,
        "model": export.model_version.short_id,
        "status": export.status,
        "status_label": export.get_status_display(),
        "error": export.error,
    }


@login_required
@require_GET
def model_status(request, slug):
    """{"models": [{id, status, stage, progress, epoch, epochs, error, accuracy}]} for the ids in
    ``?ids=a,b`` (at most 50), or for every version still training; with ``?exports=1,2`` also
    {"exports": [{id, model, status, status_label, error}]} for those TFLite exports of the
    project (and no models unless ``ids`` is given too)."""
    project = staff_project(request, slug)
    body = {}
    export_ids = _id_list(request.GET.get("exports"), int)
    if export_ids is None:
        return JsonResponse({"exports": ["A comma-separated list of export ids (integers)."]}, status=400)
    ids = _id_list(request.GET.get("ids"))
    if export_ids:
        rows = ModelExport.objects.filter(model_version__project=project, pk__in=export_ids)
        body["exports"] = [export_payload(e) for e in rows.select_related("model_version").order_by("pk")]
    if ids or not export_ids:
        versions = ModelVersion.objects.filter(project=project)
        versions = versions.filter(short_id__in=ids) if ids else versions.filter(status=ModelVersion.Status.TRAINING)
        body["models"] = [services.progress_payload(v) for v in versions.order_by("-created_at", "-pk")[:STATUS_IDS]]
    return JsonResponse(body, headers={"Cache-Control": "no-store"})


# --------------------------------------------------------------------------------------------
# Confirming a promote or a rollback: what serves now, what will serve, and their accuracy
# --------------------------------------------------------------------------------------------


def _served(version):
    """ "model ab12cd34 · dev accuracy 91.2%" (or cross-validated), or "no model"."""
    if version is None:
        return "no model (nothing is served)"
    accuracy = version.headline_accuracy
    method = ((version.metrics or {}).get("evaluation") or {}).get("method")
    basis = "cross-validated accuracy" if method == "cross_validation" else "dev accuracy"
    return f"model {version.short_id} · {basis} {_pct(accuracy)}"


def rollback_target(version):
    """The model a rollback of the current ``version`` makes current again: the one it replaced,
    if still ready (the same rule as training.services.rollback), else None."""
    last = (
        Promotion.objects.filter(model_version=version, action=Promotion.Action.PROMOTE)
        .select_related("previous")
        .order_by("-at", "-pk")
        .first()
    )
    previous = last.previous if last is not None else None
    return previous if previous is not None and previous.status == ModelVersion.Status.READY else None


def confirm_promote(version, current, concerns=None):
    """``concerns`` (training.side_by_side.verdict's sentences) make the dialog ask for a reason."""
    return {
        "title": f"Promote model {version.short_id}?",
        "now": _served(current),
        "next": _served(version),
        "ok": "Promote",
        "concerns": " ".join(concerns or []),
    }


def confirm_rollback(version):
    return {
        "title": f"Roll back model {version.short_id}?",
        "now": _served(version),
        "next": _served(rollback_target(version)),
        "ok": "Roll back",
    }


def _class_rows(metrics):
    ev = metrics.get("evaluation") or {}
    names = metrics.get("classes") or []
    rows = []
    for i, name in enumerate(names):

        def at(key, i=i):
            values = ev.get(key) or []
            return values[i] if i < len(values) else None

        rows.append(
            {
                "name": name,
                "precision": at("precision"),
                "recall": at("recall"),
                "f1": at("f1"),
                "support": at("support"),
                "roc_auc": at("roc_auc"),
            }
        )
    return rows


def _confusion_chart(metrics):
    ev = metrics.get("evaluation") or {}
    confusion = ev.get("confusion") or []
    names = metrics.get("classes") or []
    shares = []
    for row in confusion:
        total = sum(row)
        shares.append([c / total if total else None for c in row])
    return charts.heatmap(
        shares,
        names,
        title="Confusion on the evaluation items: share of each true class predicted as each column's class",
        row_title="true class (label)",
        col_title="the model predicts",
    )


def _gap_rows(metrics):
    gap = metrics.get("gap_to_hlp") or {}
    rows = []
    for row in gap.get("rows") or []:
        row = dict(row)
        row["bar"] = charts.interval_bar(
            row.get("model_accuracy"),
            reference=row.get("hlp"),
            label=f"model {_pct(row.get('model_accuracy'))}, HLP {_pct(row.get('hlp'))}",
        )
        rows.append(row)
    return rows


def _pct(value):
    return "n/a" if value is None else f"{value:.1%}"


@login_required
@require_GET
def model_detail(request, slug, model_id):
    project = staff_project(request, slug)
    version = _version(project, model_id)
    metrics = version.metrics or {}
    context = {**page_context(project), "version": version, "metrics": metrics}
    if version.status == ModelVersion.Status.READY and metrics:
        ev = metrics.get("evaluation") or {}
        top_k = metrics.get("top_k") or {}
        cross_validated = ev.get("method") == "cross_validation"  # the "dev" lists are out-of-fold
        context.update(
            evaluation=ev,
            class_rows=_class_rows(metrics),
            confusion_chart=_confusion_chart(metrics),
            calibration_chart=charts.reliability_diagram(ev.get("calibration") or {}, ece=ev.get("ece")),
            slices=metrics.get("slices") or [],
            gap=metrics.get("gap_to_hlp") or {},
            gap_rows=_gap_rows(metrics),
            galleries=[
                {
                    "key": f"{split}-{kind.replace('_', '-')}",
                    "title": _gallery_title(title, split, kind, cross_validated),
                    "hint": hint,
                    "kind": kind,
                    "items": (top_k.get(split) or {}).get(kind) or [],
                    "item_ids": ",".join(str(i["item_id"]) for i in (top_k.get(split) or {}).get(kind) or []),
                }
                for split, kind, title, hint in TOP_K_LISTS
            ],
            baselines=metrics.get("baselines") or {},
            curves=curve_charts.training_curves(metrics.get("history")),
            history=metrics.get("history"),
            curve=compare.curve_summary(metrics.get("history")),
        )
        context.update(work_next_context(request, project, version, metrics))  # "where to work next"
        current = ModelVersion.objects.filter(project=project, is_promoted=True).first()
        context["current"] = current
        context["verdict"] = side_by_side.verdict(version, current)
    if version.snapshot is not None:
        context["split_totals"] = [(split, sum(c.values())) for split, c in (version.snapshot.counts or {}).items()]
    context["status_url"] = reverse("training:model-status", args=[project.slug])
    if project.role == Role.MLE and version.status == ModelVersion.Status.READY:
        if version.is_promoted:
            context["confirm"] = confirm_rollback(version)
        else:
            current = ModelVersion.objects.filter(project=project, is_promoted=True).first()
            context["confirm"] = confirm_promote(version, current, (context.get("verdict") or {}).get("concerns"))
    context["trainer_label"] = TRAINERS[version.trainer].label if version.trainer in TRAINERS else version.trainer
    context["exports"] = version.exports.select_related("override_by").order_by("-pk")
    context["exportable"] = (
        version.status == ModelVersion.Status.READY and version.trainer in exports.EXPORTABLE_TRAINERS
    )
    return render(request, "frontend/training/model_detail.html", context, status=context.get("status", 200))


def _action(request, slug, model_id, action):
    project = staff_project(request, slug, roles=(Role.MLE,))
    version = _version(project, model_id)
    # The API's own check of the note, so the page refuses what the API refuses, with its words,
    # instead of the service cutting a long note short.
    note = NoteSerializer(data={"note": request.POST.get("note", "")})
    try:
        if not note.is_valid():
            raise services.TrainingError(f"Note: {note.errors['note'][0]}")
        record = action(version, user=request.user, note=note.validated_data["note"])
    except services.TrainingError as exc:
        messages.error(request, exc.message)
    else:
        if action is services.promote:
            text = f"Model {version.short_id} is now the current model." if record else "Already the current model."
        else:
            back = record.model_version.short_id if record.model_version else None
            text = f"Rolled back: model {back} is current again." if back else "Rolled back: no model is current now."
        messages.success(request, text)
    if request.POST.get("next") == "list":
        return redirect(reverse("training:model-list", args=[slug]))
    return redirect(reverse("training:model-detail", args=[slug, model_id]))


@login_required
@require_POST
def model_promote(request, slug, model_id):
    return _action(request, slug, model_id, services.promote)


@login_required
@require_POST
def model_rollback(request, slug, model_id):
    return _action(request, slug, model_id, services.rollback)


@login_required
@require_POST
def model_review(request, slug, model_id):
    """Send one of the model's top-k lists to the SME queue. The ids come from the stored
    metrics, never from the client."""
    project = staff_project(request, slug)
    version = _version(project, model_id)
    lists = {f"{split}-{kind.replace('_', '-')}": (split, kind, title) for split, kind, title, _ in TOP_K_LISTS}
    if request.POST.get("list") not in lists:
        messages.error(request, "Choose one of the model's top-k lists to send.")
    else:
        split, kind, title = lists[request.POST["list"]]
        items = ((version.metrics or {}).get("top_k") or {}).get(split, {}).get(kind) or []
        reason = f"model {version.short_id}: {title}"
        queued = request_review(project, [i["item_id"] for i in items], requested_by=request.user, reason=reason)
        waiting = f"; {len(items) - queued} were waiting there already" if queued < len(items) else ""
        messages.success(request, f"{queued} items sent to the SME review queue{waiting}.")
    return redirect("training:model-detail", slug=project.slug, model_id=version.short_id)


@login_required
@require_POST
def model_export(request, slug, model_id):
    """Queue a TFLite export (MLEs); the worker converts it and checks its parity."""
    project = staff_project(request, slug, roles=(Role.MLE,))
    version = _version(project, model_id)
    fmt = request.POST.get("quantize", "")
    try:
        export = exports.start_export(version, fmt, user=request.user)
    except services.TrainingError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{export.get_format_display()} export queued; its parity check follows.")
    return redirect("training:model-detail", slug=project.slug, model_id=version.short_id)


def _export(version, export_id):
    return get_object_or_404(ModelExport, pk=export_id, model_version=version)


@login_required
@require_POST
def export_override(request, slug, model_id, export_id):
    """Accept a rejected export with a note (MLEs)."""
    project = staff_project(request, slug, roles=(Role.MLE,))
    version = _version(project, model_id)
    export = _export(version, export_id)
    note = NoteSerializer(data={"note": request.POST.get("note", "")})  # as the API checks it
    try:
        if not note.is_valid():
            raise services.TrainingError(f"Note: {note.errors['note'][0]}")
        exports.override(export, user=request.user, note=note.validated_data["note"])
    except services.TrainingError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Export {export.pk} accepted despite its accuracy drop.")
    return redirect("training:model-detail", slug=project.slug, model_id=version.short_id)


@login_required
@require_GET
def export_download(request, slug, model_id, export_id):
    """The bundle (zip) of a ready export, for SMEs and MLEs of the project; 410 with a page that
    says so when its file has gone from the artifact folder."""
    project = staff_project(request, slug)
    version = _version(project, model_id)
    export = _export(version, export_id)
    if export.status != ModelExport.Status.READY:
        raise Http404("This export has no bundle to download.")
    if bundle_file(export) is None:
        context = {**page_context(project), "version": version, "export": export}
        return render(request, "frontend/training/export_gone.html", context, status=410)
    return download_response(export)
