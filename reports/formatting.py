"""How numbers read on a page: quantities in a unit people read. Money with its currency
is written by `billing.money` (`money_text`), which statement documents share.

A page rounds for reading; the exact stored value stays in the CSV, the API and the
title tooltip of each number. Durations metered in milliseconds read in h, min or s;
sizes metered in bytes read in decimal units (1 KB = 1,000 bytes, 1 GB = 1,000 MB), as
storage and bandwidth are sold. Every number in one unit shows the same decimal
places, so a column's digits line up.
"""

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from metering.catalog import UNIT_MEANINGS
from metering.models import Meter
from utilities.numbers import format_quantity

Unit = Meter.Unit


@dataclass(frozen=True)
class DisplayUnit:
    """A unit a quantity is shown in: the meter's own, or a larger one."""

    symbol: str  # written after the number: "h", "GB", "PU"
    name: str  # what the symbol means, for its tooltip
    factor: Decimal  # stored units in one of these
    places: int  # decimal places of every number shown in it
    stored: str  # the meter's unit, in which the exact value is written

    def convert(self, value) -> Decimal:
        """`value` (in the stored unit) in this unit, rounded to its places."""
        step = Decimal(1).scaleb(-self.places)
        return (Decimal(value) / self.factor).quantize(step, rounding=ROUND_HALF_UP)


# Decimal places of each meter unit when a quantity reads in it: normalized units
# and minutes to the hundredth, things counted whole.
PLACES = {
    Unit.PU: 2,
    Unit.SU: 2,
    Unit.BU: 2,
    Unit.BYTES: 0,
    Unit.MS: 0,
    Unit.COUNT: 0,
    Unit.MINUTES: 2,
    Unit.PAGES: 0,
}
# The larger units a meter unit reads in, largest first: symbol, name, stored units in one.
LARGER_UNITS = {
    Unit.MS: (
        ("h", "hours", 3_600_000),
        ("min", "minutes", 60_000),
        ("s", "seconds", 1_000),
    ),
    Unit.BYTES: (
        ("TB", "terabytes (10¹² bytes)", 10**12),
        ("GB", "gigabytes (10⁹ bytes)", 10**9),
        ("MB", "megabytes (10⁶ bytes)", 10**6),
        ("KB", "kilobytes (1,000 bytes)", 10**3),
    ),
}
LARGER_PLACES = 2
# What a page says once about the units its quantities read in.
UNIT_NOTES = {
    **UNIT_MEANINGS,
    Unit.MS: "Durations are metered in milliseconds and shown in hours (h), minutes (min) or "
    "seconds (s).",
    Unit.BYTES: "Sizes are metered in bytes and shown in decimal units: 1 KB = 1,000 bytes, "
    "1 MB = 1,000 KB, 1 GB = 1,000 MB, 1 TB = 1,000 GB.",
}


def stored_unit(unit: str) -> DisplayUnit:
    label = Unit(unit).label if unit in Unit.values else unit
    return DisplayUnit(unit, label.lower(), Decimal(1), PLACES.get(unit, 2), unit)


def display_unit(unit: str, magnitude=0) -> DisplayUnit:
    """The largest unit of `unit` in which `magnitude` is at least 1 (the meter's own
    unit below the smallest): 152,258,886 ms → h, 243,307,165,991 bytes → GB."""
    size = abs(Decimal(magnitude or 0))
    for symbol, name, factor in LARGER_UNITS.get(unit, ()):
        if size >= factor:
            return DisplayUnit(symbol, name, Decimal(factor), LARGER_PLACES, unit)
    return stored_unit(unit)


def unit_notes(units) -> list[tuple[str, str]]:
    """The notes for these meter units (each once, in the order given)."""
    return [(unit, UNIT_NOTES[unit]) for unit in dict.fromkeys(units) if unit in UNIT_NOTES]


def column_unit(unit: str, values) -> DisplayUnit:
    """One unit for a column of quantities of one meter: its largest value's."""
    return display_unit(unit, max((abs(Decimal(v)) for v in values if v is not None), default=0))


def format_in(value, unit: DisplayUnit, trim: bool = False) -> str:
    """`value` (stored unit) in `unit`, grouped, to the unit's places: 152258886 in h →
    "42.29". `trim` drops zero decimals, for round plan numbers ("Included 1,000")."""
    if value in (None, ""):
        return ""
    number = unit.convert(value)
    if trim and number == number.to_integral_value():
        number = number.quantize(Decimal(1))
    return f"{number:,f}"


def exact_text(value, unit: str) -> str:
    """The stored value and unit, for a tooltip: "152,258,886 ms"."""
    return f"{format_quantity(value)} {unit}"
