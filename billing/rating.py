"""Rating: from used quantities to money, by a plan item's allowance and prices.

Pure functions over Decimals: the included quantity is free, the overage (used −
included, never negative) is priced by graduated tiers (each tier's `up_to`
counts overage units) or else by the unit price, and the amount is rounded
half-up once, to the currency's minor unit. The overage policy decides access
and alerts (see entitlements), not the price: a `notify` item with a price
charges its overage like a `charge` item.
"""

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from billing.models import PlanItem
from billing.money import ZERO, round_money
from billing.periods import days_in_month


@dataclass(frozen=True)
class RatedItem:
    used: Decimal
    included: Decimal
    overage: Decimal
    unit_price: Decimal | None
    tiers: list = field(default_factory=list)
    amount: Decimal = ZERO


def overage_of(used: Decimal, included: Decimal) -> Decimal:
    return max(used - included, ZERO)


def graduated_amount(overage: Decimal, tiers: list[dict]) -> Decimal:
    """Each tier prices the overage units between the previous tier's bound and its own."""
    amount, floor = ZERO, ZERO
    for tier in tiers:
        ceiling = None if tier["up_to"] is None else Decimal(tier["up_to"])
        top = overage if ceiling is None else min(overage, ceiling)
        if top > floor:
            amount += (top - floor) * Decimal(tier["unit_price"])
        if ceiling is None or overage <= ceiling:
            break
        floor = ceiling
    return amount


def rate_item(item: PlanItem, used: Decimal, currency: str) -> RatedItem:
    overage = overage_of(used, item.included_quantity)
    if item.tiers:
        raw, unit_price = graduated_amount(overage, item.tiers), None
    else:
        raw, unit_price = overage * item.unit_price, item.unit_price
    return RatedItem(
        used=used,
        included=item.included_quantity,
        overage=overage,
        unit_price=unit_price,
        tiers=list(item.tiers),
        amount=round_money(raw, currency),
    )


def prorated_fee(base_fee: Decimal, starts_on: date, ends_on: date, currency: str) -> Decimal:
    """The base fee for the days from `starts_on` to `ends_on` of one month, by day."""
    month_days = days_in_month(starts_on)
    days = (ends_on - starts_on).days + 1
    if days >= month_days:
        return round_money(base_fee, currency)
    return round_money(base_fee * days / month_days, currency)
