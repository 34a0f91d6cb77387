from django import template
from django.http import QueryDict

from reports.formatting import format_money, format_quantity

register = template.Library()


@register.filter
def quantity(value) -> str:
    return format_quantity(value)


@register.filter
def money(value, currency: str) -> str:
    return f"{format_money(value, currency)} {currency}"


@register.simple_tag(takes_context=True)
def with_params(context, drop: str = "", **params) -> str:
    """The current query string with `params` set and the comma-separated `drop` removed."""
    query: QueryDict = context["request"].GET.copy()
    for name in [d for d in drop.split(",") if d]:
        query.pop(name, None)
    for name, value in params.items():
        query[name] = value
    return query.urlencode()
