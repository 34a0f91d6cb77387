"""Values as the databases hand them back, made exact."""

from datetime import date
from decimal import Decimal


def to_decimal(value) -> Decimal:
    if value is None:
        return Decimal(0)
    if isinstance(value, Decimal):
        return value
    # SQLite hands sums of decimal columns back as float; quantities carry 6 places.
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def as_date(value) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value
