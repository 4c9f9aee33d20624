"""The label-quality dashboard: the project's stored quality report as a page (SMEs and MLEs).

The page reads the stored report (a handful of queries whatever the project's size) and never
computes it, except a small project's very first one (see annotation.services.quality). Charts
are SVG built in frontend.charts from the report's numbers.
"""

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render

from annotation.access import STAFF_ROLES, require_role, role_in
from annotation.models import Project, Role, Tag
from annotation.services.quality import quality_for_display
from annotation.tag_slices import is_tag_slice, tag_name

from . import charts

LABELER_ROWS = 50
PAIR_ROWS = 5
DISPUTED_ROWS = 12
ACTION_LABELS = {
    "merge": "Merge the classes",
    "borderline": "Use a borderline class",
    "clarify": "Clarify the guideline",
}


def _version_name(version):
    return "no guideline" if version < 0 else f"v{version}"


def _with_bars(rows, value="accuracy", reference=None):
    for row in rows:
        row["bar"] = charts.interval_bar(row.get(value), row.get("ci_low"), row.get("ci_high"), reference=reference)
    return rows


def _dashboard(report):
    """Template context from a supported report: the tables' rows and the charts."""
    hlp = report["hlp"]
    on_truth = hlp["basis"] == "ground_truth"
    reference = hlp["value"] if on_truth else None
    labelers = _with_bars([dict(r) for r in report["labelers"][:LABELER_ROWS]], reference=reference)
    classes = _with_bars([dict(r) for r in report["classes"]], reference=reference)
    for row in classes:
        row["agreement_bar"] = charts.interval_bar(row.get("specific_agreement"))
    slices = []
    for key in report["slices"]:
        rows = []
        for value in key["values"]:
            row = dict(value)
            row["bar"] = (
                charts.interval_bar(row["accuracy"], row["ci_low"], row["ci_high"], reference=reference)
                if on_truth
                else charts.interval_bar(row["pairwise_agreement"])
            )
            rows.append(row)
        slices.append({**key, "values": rows})

    confusion = report["confusion"]
    heatmap = charts.heatmap(
        confusion["row_share"],
        confusion["classes"],
        counts=confusion["counts"],
        title="Inter-labeler confusion: when one labeler gives the row's class, how often another gives each column's",
        row_title="one labeler says",
        col_title="another labeler of the same item says",
    )

    versions = report["guideline_versions"]
    series = [
        ("Krippendorff's \N{GREEK SMALL LETTER ALPHA}", [v["krippendorff_alpha"] for v in versions]),
        ("Fleiss' \N{GREEK SMALL LETTER KAPPA}", [v["fleiss_kappa"] for v in versions]),
        ("Pairwise agreement", [v["percent_agreement"] for v in versions]),
    ]
    if any(v["scored"] for v in versions):
        series.append(("Accuracy vs truth", [v["accuracy"] for v in versions]))
    version_chart = charts.grouped_bars(
        [_version_name(v["version"]) for v in versions],
        series,
        title="Agreement by guideline version",
        group_notes=[f"{v['labels']:,} labels · {v['paired_items']:,} paired items" for v in versions],
    )
    for v in versions:
        v["name"] = _version_name(v["version"])

    pairs = [
        dict(p, action_label=ACTION_LABELS.get(p["action"], p["action"])) for p in report["ambiguity"]["confused_pairs"]
    ]
    return {
        "on_truth": on_truth,
        "labelers": labelers,
        "labelers_not_shown": max(0, len(report["labelers"]) - LABELER_ROWS),
        "classes": classes,
        "slices": slices,
        "heatmap": heatmap,
        "version_chart": version_chart,
        "versions": versions,
        "pairs": pairs[:PAIR_ROWS],
        "disputed": report["disputed_items"][:DISPUTED_ROWS],
    }


@login_required
def quality_dashboard(request, slug):
    project = get_object_or_404(Project.objects.visible_to(request.user), slug=slug)
    role = role_in(request.user, project)
    require_role(role, STAFF_ROLES)
    shown = quality_for_display(project)
    report = shown.report.data if shown.report is not None else None
    context = {
        "nav": "projects",
        "project": project,
        "role": role,
        "role_label": Role(role).label if role else "",
        "shown": shown,
        "report": report,
        "age_seconds": shown.age_seconds(),
    }
    if report is not None and report.get("supported"):
        context.update(_dashboard(report))
        context.update(_tags_and_sources(project, report, context["slices"]))
    return render(request, "frontend/quality.html", context)


def _tags_and_sources(project, report, slices):
    """Tag slices get their tag (name and colour, one query; a tag renamed or deleted since the
    report keeps its stored name, without a colour); and HLP against gold and against SME
    resolutions apart, with their interval bars (reports stored before it lack the block)."""
    colours = dict(Tag.objects.filter(project=project).values_list("name", "colour"))
    for key in slices:
        if is_tag_slice(key["key"]):
            name = tag_name(key["key"])
            key["tag"] = {"name": name, "colour": colours.get(name, "#6b7280")}
    by_source = report.get("hlp_by_source")
    sources = []
    if by_source:
        for source, title in (("gold", "Against gold"), ("resolution", "Against SME resolutions")):
            row = dict(by_source[source])
            row.update(source=source, title=title)
            row["bar"] = charts.interval_bar(row.get("accuracy"), row.get("ci_low"), row.get("ci_high"))
            sources.append(row)
    return {"tag_slices": [k for k in slices if "tag" in k], "hlp_sources": sources, "hlp_by_source": by_source}
