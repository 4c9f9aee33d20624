"""Setting up a project in the browser: create it, upload its data, manage its members.

Who may do what:
- **Create a project**: staff, users granted `annotation.add_project`, and anyone who is an MLE
  in at least one project (annotation.access.can_create_projects, the API's rule). The creator
  becomes the new project's MLE. Others get the 403 page.
- **Upload data** and **change members**: the project's MLEs (and superusers). SMEs see the
  member list but get 403 on every change; labelers get the 403 page; non-members 404
  (frontend/staff.py `staff_project`).
- **Accounts**: no open sign-up. An MLE creates an account for a new member; Concord generates
  its password and shows it once, on the answer to that request (never stored in clear, never
  in a URL or a log). The MLE hands it over; an admin resets a lost one.

Validation is the API's: the project form goes through the API's ProjectCreateSerializer and
then `create_project`, the member forms through `add_member` / `change_role` / `remove_member`;
their messages are shown next to the field they name.
"""

import tempfile
from pathlib import Path

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.text import slugify
from rest_framework import serializers

from annotation.access import can_create_projects
from annotation.api.serializers import ImportUploadSerializer, MemberSerializer, ProjectCreateSerializer
from annotation.errors import DomainError
from annotation.models import DataKind, ImportBatch, Membership, Role, Split, TaskType
from annotation.services.annotation_import import import_annotations
from annotation.services.item_import import import_items
from annotation.services.labelstudio_import import import_labelstudio
from annotation.services.projects import add_member, change_role, create_account, create_project
from annotation.services.projects import remove_member as remove_membership

from .staff import page_context, staff_project
from .views import recent_import_batches, with_reports

# --- create a project ---------------------------------------------------------------------------


FORM_FIELDS = ("name", "slug", "description", "data_kind", "task_type", "classes", "ambiguity_classes")
NUMBER_FIELDS = ("overlap", "consistency_fraction", "gold_rate")


def _class_lines(text):
    """Class names, one per line; `name = k` chooses its key. Returns (names, {name: key})."""
    names, keys = [], {}
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        name, sep, key = line.rpartition("=")
        if sep and name.strip() and len(key.strip()) == 1:
            line = name.strip()
            keys[line] = key.strip()
        names.append(line)
    return names, keys


def _form_errors(detail):
    """DRF's error detail as {field: [messages]}; list fields' per-entry errors flattened."""
    errors = {}
    for field, messages in detail.items():
        if isinstance(messages, dict):  # a ListField names the bad entry by index
            messages = [f"line {int(i) + 1}: {m}" for i, ms in messages.items() for m in ms]
        errors[field] = [str(m) for m in messages]
    return errors


@login_required
def project_create(request):
    if not can_create_projects(request.user):
        raise PermissionDenied("Creating projects needs the MLE role in a project, or an admin.")
    values = {"data_kind": DataKind.IMAGE, "task_type": TaskType.SINGLE_LABEL, "overlap": "3"}
    values |= {"consistency_fraction": "0.2", "gold_rate": ""}
    errors = {}
    status = 200
    if request.method == "POST":
        values = {f: request.POST.get(f, "") for f in FORM_FIELDS + NUMBER_FIELDS}
        project, errors = _create(request.user, values)
        if project is not None:
            return HttpResponseRedirect(reverse("frontend:project-detail", args=[project.slug]))
        status = 400
    context = {
        "nav": "projects",
        "values": values,
        "errors": errors,
        "data_kinds": DataKind.choices,
        "task_types": TaskType.choices,
        "reserved_keys": "U, S, Z",
    }
    return render(request, "frontend/setup/project_create.html", context, status=status)


def _create(user, values):
    """(project, {}) or (None, {field: [messages]}). An empty slug is made from the name (and
    written back into `values`, so a refused one is shown in its field)."""
    classes, keys = _class_lines(values["classes"])
    ambiguity, ambiguity_keys = _class_lines(values["ambiguity_classes"])
    values["slug"] = values["slug"].strip() or slugify(values["name"])[:100]
    data = {
        "name": values["name"],
        "slug": values["slug"],
        "description": values["description"],
        "data_kind": values["data_kind"],
        "task_type": values["task_type"],
        "classes": classes,
        "ambiguity_classes": ambiguity,
        "overlap": values["overlap"],
        "consistency_fraction": values["consistency_fraction"],
    }
    if values["gold_rate"].strip():
        data["gold_rate"] = values["gold_rate"]
    checked = ProjectCreateSerializer(data=data)
    if not checked.is_valid():
        return None, _form_errors(checked.errors)
    fields = dict(checked.validated_data)
    description = fields.pop("description")
    split_fractions = tuple(fields.pop(f"{s}_fraction") for s in Split.values)
    try:
        project = create_project(
            **fields, split_fractions=split_fractions, created_by=user, shortcuts=keys | ambiguity_keys
        )
    except DomainError as exc:
        return None, {exc.field if exc.field in FORM_FIELDS + NUMBER_FIELDS else "form": [exc.message]}
    if description:
        project.description = description
        project.save(update_fields=["description"])
    return project, {}


# --- upload data ----------------------------------------------------------------------------------

UPLOAD_KINDS = {
    "items": "Items: images (.zip, optional manifest.csv) or texts (.csv / .jsonl), optional gold column",
    "annotations": "Existing labels (.csv / .tsv: item, labeler, label), optional gold file (item, label)",
    "label_studio": "Label Studio JSON export (tasks, annotations, predictions)",
}


def _run_import(project, kind, path, truth_path, options, user, source_name):
    """Route the upload to its import service by what the MLE says the file holds and its type."""
    if kind == "items" and path.suffix.lower() == ".json":
        kind = "label_studio"  # a .json file is never an items file: route it by its type
    if kind == "label_studio":
        return import_labelstudio(
            project, path, user=user, source_name=source_name, create_classes=options.get("create_classes", False)
        )
    if kind == "annotations":
        return import_annotations(
            project,
            path,
            truth_path=truth_path,
            delimiter=options["delimiter"],
            has_header=options["has_header"],
            create_classes=options["create_classes"],
            user=user,
            source_name=source_name,
        )
    return import_items(project, path, user=user, source_name=source_name)


def _save_upload(upload, folder):
    path = Path(folder) / Path(upload.name).name
    with open(path, "wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    return path


@login_required
def upload(request, slug):
    project = staff_project(request, slug, roles=(Role.MLE,))
    errors = {}
    status = 200
    kind = request.POST.get("kind", "items") if request.method == "POST" else "items"
    if request.method == "POST":
        batch, errors = _upload(request, project, kind)
        if batch is not None:
            url = reverse("frontend:project-upload", args=[project.slug]) + f"?batch={batch.pk}"
            return HttpResponseRedirect(url)
        status = 400
    just_done = None
    batch_id = request.GET.get("batch", "")
    if batch_id.isdigit():
        just_done = ImportBatch.objects.filter(project=project, pk=int(batch_id)).first()
    batches, more = recent_import_batches(project)
    context = {
        **page_context(project),
        "errors": errors,
        "kind": kind,
        "kinds": list(UPLOAD_KINDS.items()),
        "just_done": just_done,
        "just_done_list": with_reports([just_done]) if just_done else [],
        "batches": batches,
        "more_batches": more,
    }
    return render(request, "frontend/setup/upload.html", context, status=status)


def _upload(request, project, kind):
    """(batch, {}) or (None, {field: [messages]})."""
    if kind not in UPLOAD_KINDS:
        return None, {"kind": [f"choose one of: {', '.join(UPLOAD_KINDS)}"]}
    checked = ImportUploadSerializer(data={"file": request.FILES.get("file")})
    if not checked.is_valid():
        return None, _form_errors(checked.errors)
    truth = request.FILES.get("truth") if kind == "annotations" else None
    if truth is not None:
        checked_truth = ImportUploadSerializer(data={"file": truth})
        if not checked_truth.is_valid():
            return None, {"truth": _form_errors(checked_truth.errors)["file"]}
    options = {
        "delimiter": "TAB" if request.POST.get("delimiter") == "tab" else ",",
        "has_header": request.POST.get("has_header") == "on",
        "create_classes": request.POST.get("create_classes") == "on",
    }
    upload_file = checked.validated_data["file"]
    with tempfile.TemporaryDirectory() as folder, tempfile.TemporaryDirectory() as truth_folder:
        path = _save_upload(upload_file, folder)
        truth_path = _save_upload(truth, truth_folder) if truth is not None else None
        try:
            batch = _run_import(project, kind, path, truth_path, options, request.user, path.name)
        except DomainError as exc:
            field = exc.field if exc.field in ("file", "truth") else "file"
            return None, {field: [exc.message]}
    return batch, {}


# --- members ----------------------------------------------------------------------------------------


@login_required
def members(request, slug):
    project = staff_project(request, slug)  # SMEs see the list; changes are the MLEs'
    errors, action, created = {}, None, None
    status = 200
    if request.method == "POST":
        if project.role != Role.MLE:
            raise PermissionDenied("Changing members needs the role ML engineer in this project.")
        action = request.POST.get("action", "")
        try:
            created = _member_action(request, project, action)
        except DomainError as exc:
            errors = {exc.field or "form": [exc.message]}
        except serializers.ValidationError as exc:
            errors = _form_errors(exc.detail)
        if errors:
            status = 400
        elif created is None:
            # Post/redirect/get, except after creating an account: its password is shown once,
            # on this answer only.
            return HttpResponseRedirect(reverse("frontend:project-members", args=[project.slug]))
    rows = Membership.objects.filter(project=project).select_related("user").order_by("role", "user__username")
    context = {
        **page_context(project),
        "members": list(rows),
        "roles": Role.choices,
        "errors": errors,
        "action": action,
        "posted": request.POST if errors else {},
        "created": created,
    }
    response = render(request, "frontend/setup/members.html", context, status=status)
    if created is not None:
        response["Cache-Control"] = "no-store"  # the page holds a password
    return response


def _member_action(request, project, action):
    """Do one member change; returns {username, password, role} after creating an account."""
    post = request.POST
    if action in ("add", "create"):
        data = MemberSerializer(data={"username": post.get("username", "").strip(), "role": post.get("role", "")})
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        if action == "add":
            add_member(project, username=fields["username"], role=fields["role"], by=request.user)
            return None
        membership, password = create_account(
            project, username=fields["username"], role=fields["role"], by=request.user
        )
        return {"username": membership.user.get_username(), "role": membership.get_role_display(), "password": password}
    if action == "role":
        change_role(project, username=post.get("username", ""), role=post.get("role", ""))
        return None
    if action == "remove":
        remove_membership(project, username=post.get("username", ""))
        return None
    raise DomainError(f"unknown action {action!r}: add, create, role or remove", "action")
