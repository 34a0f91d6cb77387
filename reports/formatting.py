"""How quantities read on a page: grouped thousands, no trailing zeros."""

from decimal import Decimal

from billing.money import round_money


def format_quantity(value) -> str:
    """1234.750000 → "1,234.75"; the exact value stays in CSV and the API."""
    if value in (None, ""):
        return ""
    number = Decimal(value).normalize()
    return f"{number:,f}"


def format_money(value, currency: str) -> str:
    """An amount in its currency's minor unit, grouped: 1920.170 USD → "1,920.17"."""
    if value in (None, ""):
        return ""
    return f"{round_money(Decimal(value), currency):,f}"
