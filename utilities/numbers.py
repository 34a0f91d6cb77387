"""How an exact quantity is written for people: grouped, without trailing zeros.

Pages (reports) and statement documents (billing) write quantities so.
"""

from decimal import Decimal


def format_quantity(value) -> str:
    """1234.750000 → "1,234.75": exact, for tooltips, plan figures and documents."""
    if value in (None, ""):
        return ""
    number = Decimal(value).normalize()
    return f"{number:,f}"
