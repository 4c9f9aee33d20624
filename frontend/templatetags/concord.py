"""Small display filters for Concord's pages (numbers and shares; never marks anything safe)."""

from django import template

register = template.Library()


@register.filter
def thousands(value):
    """1797 -> '1,797', 0.8512 -> '0.8512'; anything that is not a number comes back unchanged."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.4g}"
    return f"{int(value):,}"


@register.filter
def percent(value, digits=0):
    """0.2 -> '20%'; a share in [0, 1] shown as a percentage."""
    try:
        return f"{float(value) * 100:.{int(digits)}f}%"
    except (TypeError, ValueError):
        return value


@register.filter
def share_of(part, whole):
    """part / whole as a percentage string, '0%' when whole is 0."""
    try:
        whole = float(whole)
        return f"{(float(part) / whole * 100) if whole else 0:.0f}%"
    except (TypeError, ValueError):
        return ""
