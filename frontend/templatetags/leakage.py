"""The model page's leakage panel: ``{% leakage_panel %}`` renders the leakage check of the page's
model (its snapshot's report) without the model page's view knowing about it, so the page takes
it with one ``{% include %}`` line (frontend/training/_leakage.html)."""

from django import template

from training import leakage_service

register = template.Library()

SHOWN_GROUPS = 20
SHOWN_ITEMS = 24  # of one group, and as many of its pairs


@register.inclusion_tag("frontend/training/_leakage_panel.html", takes_context=True)
def leakage_panel(context):
    version = context.get("version")
    project = context.get("project")
    report = None
    if version is not None and version.snapshot_id is not None:
        report = leakage_service.latest_report(project, snapshot=version.snapshot)
    return {
        "project": project,
        "version": version,
        "is_mle": context.get("is_mle", False),
        "csrf_token": context.get("csrf_token"),
        "report": leakage_service.describe(report, limit=SHOWN_GROUPS, item_limit=SHOWN_ITEMS)
        if report is not None
        else None,
        "shown": SHOWN_GROUPS,
    }
