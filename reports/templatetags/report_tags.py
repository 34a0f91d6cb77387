from datetime import UTC

from django import template
from django.http import QueryDict
from django.utils import dateformat, timezone
from django.utils.html import format_html

from accounts.services import user_can_manage
from billing.money import money_text
from reports.formatting import (
    DisplayUnit,
    exact_text,
    format_in,
    format_quantity,
)

register = template.Library()


@register.filter
def quantity(value) -> str:
    return format_quantity(value)


@register.filter
def money(value, currency: str) -> str:
    return money_text(value, currency)


@register.simple_tag
def measure(value, unit: DisplayUnit, trim: bool = False) -> str:
    """A quantity in `unit`, its exact stored value as the tooltip:
    <span title="152,258,886 ms">42.29</span>."""
    return format_html(
        '<span title="{}">{}</span>',
        exact_text(value, unit.stored),
        format_in(value, unit, trim=trim),
    )


@register.simple_tag
def unit_symbol(unit: DisplayUnit) -> str:
    """The unit's symbol, its meaning on hover: <abbr title="hours">h</abbr>."""
    if unit.name == unit.symbol.lower():
        return format_html('<span class="unit">{}</span>', unit.symbol)
    return format_html('<abbr class="unit" title="{}">{}</abbr>', unit.name, unit.symbol)


@register.simple_tag
def local_time(value, format: str = "Y-m-d H:i") -> str:
    """A moment in the viewer's time zone, the zone named, UTC on hover:
    <time datetime="…" title="2026-11-20 13:05 UTC">2026-11-20 14:05 Europe/Berlin</time>."""
    if value is None:
        return ""
    zone = timezone.get_current_timezone_name()
    shown = dateformat.format(timezone.localtime(value), format)
    utc = dateformat.format(value.astimezone(UTC), format)
    return format_html(
        '<time datetime="{}" title="{} UTC">{} {}</time>', value.isoformat(), utc, shown, zone
    )


@register.simple_tag(takes_context=True)
def with_params(context, drop: str = "", **params) -> str:
    """The current query string with `params` set and the comma-separated `drop` removed."""
    query: QueryDict = context["request"].GET.copy()
    for name in [d for d in drop.split(",") if d]:
        query.pop(name, None)
    for name, value in params.items():
        query[name] = value
    return query.urlencode()


@register.simple_tag
def manages(user, tenant) -> bool:
    """Whether the user may change the tenant's settings (its scheduled reports)."""
    return user_can_manage(user, tenant)
