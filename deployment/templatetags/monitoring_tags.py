"""Template tags of the monitoring page and the project page's drift banner."""

from django import template

from ..monitoring_models import DriftAlert

register = template.Library()


@register.filter
def get_item(mapping, key):
    """``mapping[key]`` in a template, None when absent."""
    return mapping.get(key) if hasattr(mapping, "get") else None


@register.inclusion_tag("deployment/monitoring_banner.html")
def drift_banner(project, oversees):
    """The open drift alerts of a project, for SMEs and MLEs (one query; none for labelers)."""
    alerts = []
    if oversees:
        alerts = list(DriftAlert.objects.filter(project=project, status="open").values_list("channel", flat=True))
    return {"project": project, "oversees": oversees, "alert_channels": sorted(set(alerts)), "alert_count": len(alerts)}
