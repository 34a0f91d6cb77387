"""JSON for usage events: exact decimals, no NaN/Infinity, and the shared body rules."""

from decimal import Decimal

from utilities.api.parsers import MAX_JSON_EXPONENT, StrictJSONParser


def bounded_decimal(text: str) -> Decimal:
    """A JSON number as an exact Decimal, refused when its exponent is out of range:
    Decimal stores 1e999999999 but any arithmetic on it overflows."""
    value = Decimal(text)
    if abs(value.adjusted()) > MAX_JSON_EXPONENT:
        raise ValueError(f"Number {text[:40]} is out of range.")
    return value


class EventsJSONParser(StrictJSONParser):
    """Numbers parse to Decimal so 0.1 stays 0.1; size, depth and text as every body."""

    parse_float = staticmethod(bounded_decimal)
