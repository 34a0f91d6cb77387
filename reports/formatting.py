"""How quantities read on a page: grouped thousands, no trailing zeros."""

from decimal import Decimal


def format_quantity(value) -> str:
    """1234.750000 → "1,234.75"; the exact value stays in CSV and the API."""
    if value in (None, ""):
        return ""
    number = Decimal(value).normalize()
    return f"{number:,f}"
