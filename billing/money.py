"""Money rules: ISO 4217 currencies, their minor units, and the one rounding."""

from decimal import ROUND_HALF_UP, Decimal

from babel.numbers import get_currency_precision, list_currencies

from utilities.currencies import validate_currency_code

ZERO = Decimal("0")


def validate_currency(code: str) -> None:
    """The plan's check (the migrations name it here); the rule is the ground floor's."""
    validate_currency_code(code)


def minor_unit(currency: str) -> Decimal:
    """The smallest amount of `currency`: 0.01 for USD, 1 for JPY, 0.001 for KWD."""
    return Decimal(1).scaleb(-get_currency_precision(currency))


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Half-up to the currency's minor unit; called once per statement line."""
    return amount.quantize(minor_unit(currency), rounding=ROUND_HALF_UP)


def money_string(amount: Decimal, currency: str) -> str:
    """An amount as people and integrations read it: to the currency's minor unit
    ("500.00" USD, "500" JPY, "500.000" KWD), with more places only where the amount
    has them (a unit price of 0.0004), never an exponent."""
    minor = minor_unit(currency)
    if amount == amount.quantize(minor):
        return f"{amount.quantize(minor):f}"
    return f"{amount.normalize():f}"


def format_money(value, currency: str) -> str:
    """An amount in its currency's minor unit, grouped: 1920.170 USD → "1,920.17"
    (JPY "1,920", KWD "1,920.170"). Pages and statement documents write money so."""
    if value in (None, ""):
        return ""
    return f"{round_money(Decimal(value), currency):,f}"


def money_text(value, currency: str) -> str:
    """An amount as a page or a statement document shows it: "1,920.17 USD"."""
    if value in (None, ""):
        return ""
    return f"{format_money(value, currency)} {currency}"


def format_price(value, currency: str) -> str:
    """A price as a statement document shows it: as `money_string` writes it (more
    places only where the price has them), grouped: "1,250.00", "0.0004"."""
    return f"{Decimal(money_string(Decimal(value), currency)):,f}"


def validate_amount_for(currency: str, amount: Decimal | None, field: str) -> dict:
    """An amount with more places than the currency has minor units is a typo."""
    if amount is None or not currency or currency not in list_currencies():
        return {}
    places = get_currency_precision(currency)
    if amount != amount.quantize(minor_unit(currency)):
        return {field: f"{currency} amounts have at most {places} decimal places."}
    return {}
