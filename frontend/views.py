"""Browser pages. Each view authorizes through the user-scoped querysets and reads with a fixed
number of queries, whatever the number of projects, items, classes or labelers.

Labelers label blind: the project page shows them no gold status, no other labeler's work, no
import reports (which can carry gold labels) and no preview of the items (they see the items
served to them, one at a time, nothing else). Those are for SMEs, MLEs and superusers.
"""

from django.contrib.auth.decorators import login_required
from django.db.models import Count, Exists, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce, Left
from django.shortcuts import get_object_or_404, render

from active_learning.services import cycle_settings
from annotation.models import Annotation, GoldLabel, Item, LabelClass, Membership, Project, Role, Split
from annotation.services import project_counts

PREVIEW_ITEMS = 24
PREVIEW_TEXT_CHARS = 240
IMPORT_BATCH_ROWS = 20
ERROR_ROWS_PER_BATCH = 100
SUMMARY_LIST_ITEMS = 20


def _count_per_project(queryset, distinct=False):
    """A correlated subquery counting `queryset` rows for the outer project (0 when none).

    `distinct` counts each row once where a join (e.g. to annotations) repeats it."""
    counted = queryset.order_by().values("project").annotate(n=Count("pk", distinct=distinct)).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def _user_role(user):
    """The user's role in the outer project (None where they are not a member, e.g. a superuser)."""
    return Subquery(Membership.objects.filter(project=OuterRef("pk"), user=user).values("role")[:1])


def _oversees(user, role):
    """May this user see gold labels, other people's labels and import reports?"""
    return user.is_superuser or role in (Role.SME, Role.MLE)


@login_required
def project_list(request):
    projects = (
        Project.objects.visible_to(request.user)
        .annotate(
            user_role=_user_role(request.user),
            n_items=_count_per_project(Item.objects.filter(project=OuterRef("pk"))),
            n_labelled=_count_per_project(
                Item.objects.filter(project=OuterRef("pk"), annotations__is_current=True), distinct=True
            ),
            n_classes=_count_per_project(LabelClass.objects.filter(project=OuterRef("pk"), is_active=True)),
        )
        .order_by("name", "pk")
    )
    projects = list(projects)
    for p in projects:
        p.role_label = Role(p.user_role).label if p.user_role else ("Admin" if request.user.is_superuser else "")
    # Who may create a project (annotation.access.can_create_projects), read off the list already
    # loaded: staff, or an MLE somewhere. A user granted only the permission opens /new-project/.
    creates = request.user.is_staff or any(p.user_role == Role.MLE for p in projects)
    return render(
        request, "frontend/project_list.html", {"projects": projects, "nav": "projects", "creates_projects": creates}
    )


def recent_import_batches(project, limit=IMPORT_BATCH_ROWS):
    """The project's latest import batches with their reports ready to draw
    (frontend/setup/_import_batches.html), and whether there are more. Two queries at most."""
    batches = list(project.import_batches.select_related("created_by").order_by("-created_at", "-pk")[: limit + 1])
    more = len(batches) > limit
    return with_reports(batches[:limit]), more


def with_reports(batches):
    """The batches, each with its summary and error report as rows to draw."""
    for b in batches:
        b.error_rows = _error_rows(b.errors)
        b.summary_rows = _summary_rows(b.summary)
        b.errors_not_shown = max(0, len(b.errors) - len(b.error_rows)) if isinstance(b.errors, list) else 0
    return batches


def _error_rows(errors):
    """A batch's error report as rows of (row, field, file, message), whatever shape each entry has."""
    rows = []
    for entry in errors[:ERROR_ROWS_PER_BATCH] if isinstance(errors, list) else []:
        if isinstance(entry, dict):
            rows.append({key: entry.get(key, "") for key in ("row", "field", "file", "message")})
        else:
            rows.append({"row": "", "field": "", "file": "", "message": str(entry)})
    return rows


def _summary_rows(summary):
    """What an import found, as (label, value) pairs: numbers and short texts; lists of names are
    joined; examples and other nested data are left to the API."""
    rows = []
    for key, value in summary.items() if isinstance(summary, dict) else []:
        if isinstance(value, bool) or value is None or value == "":
            continue
        if isinstance(value, list):
            if not value or not all(isinstance(v, str | int | float) for v in value):
                continue
            shown = ", ".join(str(v) for v in value[:SUMMARY_LIST_ITEMS])
            value = shown + (f" … (+{len(value) - SUMMARY_LIST_ITEMS})" if len(value) > SUMMARY_LIST_ITEMS else "")
        elif not isinstance(value, str | int | float):
            continue
        rows.append((key.replace("_", " ").capitalize(), value))
    return rows


@login_required
def project_detail(request, slug):
    user = request.user
    project = get_object_or_404(
        Project.objects.visible_to(user).annotate(user_role=_user_role(user)).select_related("created_by", "counts"),
        slug=slug,
    )
    oversees = _oversees(user, project.user_role)
    role_label = Role(project.user_role).label if project.user_role else ("Admin" if user.is_superuser else "")

    classes = list(project.label_classes.select_related("merged_into").order_by("order", "name"))

    # Counted once per MAX_AGE or after an import, not per request (annotation/services/project_counts.py).
    counts = project_counts.counts_for(project)
    item_counts = {
        "total": counts.items,
        **{s.value: getattr(counts, s.value) for s in Split},
        "consistency": counts.consistency,
    }
    if oversees:
        item_counts["gold"] = counts.gold
    annotation_counts = {
        "annotations": counts.annotations,
        "labelled_items": counts.labelled_items,
        "labelers": counts.labelers,
        # Read live (one query on the labeler's index): it is what a labeler watches grow.
        "mine": Annotation.objects.current().filter(item__project=project, labeler=user).count(),
    }

    team = {row["role"]: row["n"] for row in project.memberships.values("role").annotate(n=Count("pk")).order_by()}
    team_rows = [(Role(r).label, team.get(r, 0)) for r in Role.values]

    splits = [
        {
            "name": s.label,
            "value": s.value,
            "fraction": project.split_fractions[s],
            "count": item_counts[s.value],
        }
        for s in Split
    ]

    preview = []  # labelers get none (see the module docstring)
    if oversees:
        preview = project.items.order_by("pk").annotate(has_gold=Exists(GoldLabel.objects.filter(item=OuterRef("pk"))))
        if project.data_kind == "text":
            preview = preview.annotate(snippet=Left("text", PREVIEW_TEXT_CHARS + 1)).defer("text")
        preview = list(preview.defer("metadata")[:PREVIEW_ITEMS])

    context = {
        "nav": "projects",
        "project": project,
        "role_label": role_label,
        "oversees": oversees,
        "classes": classes,
        "n_active_classes": sum(1 for c in classes if c.is_active),
        "item_counts": item_counts,
        "annotation_counts": annotation_counts,
        "team_rows": team_rows,
        "splits": splits,
        "preview": preview,
        "shows_preview": oversees,
        "preview_text_chars": PREVIEW_TEXT_CHARS,
    }
    if project.user_role == Role.MLE or user.is_superuser:
        context["launches_cycles"] = True
        context["cycle_batch_size"] = cycle_settings()["BATCH_SIZE"]
    if oversees:
        context["labeler_rows"] = counts.labeler_rows
        context["counted_at"] = counts.computed_at
        context["batches"], context["more_batches"] = recent_import_batches(project)
    if project.user_role == Role.MLE or user.is_superuser:
        context["sets_up"] = True  # upload and members pages (frontend/setup_views.py)
    return render(request, "frontend/project_detail.html", context)
