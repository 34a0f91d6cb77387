"""SQL expressions over a usage event `e` (and its meter `mt`) that differ by database."""

from django.db import connection


def event_day_sql() -> str:
    """The event's UTC day."""
    if connection.vendor == "postgresql":
        return "((e.occurred_at AT TIME ZONE 'UTC')::date)"
    return "date(e.occurred_at)"


def day_parameter_sql() -> str:
    """A UTC day passed as a parameter, typed as the day of event_day_sql."""
    if connection.vendor == "postgresql":
        return "CAST(%s AS date)"
    return "%s"


def unique_value_sql() -> str:
    """The event's value of its meter's unique_key attribute, as text."""
    if connection.vendor == "postgresql":
        return "(e.attributes ->> mt.unique_key)"
    return "json_extract(e.attributes, '$.\"' || mt.unique_key || '\"')"


def placeholders(values) -> str:
    return ", ".join(["%s"] * len(values))
