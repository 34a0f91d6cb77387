"""Rating: from used quantities to money, by a plan item's allowance and charge model.

Pure functions over Decimals. The included quantity is free; the overage (used −
included, never negative) is priced by the item's charge model, one strategy
each in CHARGE_MODELS:

- graduated: each tier prices the overage units inside it, plus its flat fee once
  any quantity falls inside it;
- volume: the tier the whole overage falls into prices every unit, plus its flat fee;
- package: the unit price per started package of `package_size` units.

A tier holds the overage in (previous `up_to`, `up_to`] (the last tier is open).
Without tiers, graduated and volume items charge the unit price per overage unit.
The amount is rounded half-up once, to the currency's minor unit; the tiers
applied keep their unrounded amounts. The overage policy decides access and
alerts (see entitlements), not the price: a `notify` item with a price charges
its overage like a `charge` item.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_CEILING, Decimal

from billing.choices import ChargeModel
from billing.money import ZERO, round_money
from billing.periods import days_in_month


@dataclass(frozen=True)
class AppliedTier:
    """One tier as it priced a line: the overage units it held and what they cost."""

    start: Decimal
    end: Decimal | None
    units: Decimal
    unit_price: Decimal
    flat_fee: Decimal
    amount: Decimal

    def as_json(self) -> dict:
        return {
            "from": plain(self.start),
            "to": None if self.end is None else plain(self.end),
            "units": plain(self.units),
            "unit_price": plain(self.unit_price),
            "flat_fee": plain(self.flat_fee),
            "amount": plain(self.amount),
        }


@dataclass(frozen=True)
class RatedItem:
    used: Decimal
    included: Decimal
    overage: Decimal
    unit_price: Decimal | None
    charge_model: str = ChargeModel.GRADUATED
    tiers: list[AppliedTier] = field(default_factory=list)
    amount: Decimal = ZERO


@dataclass(frozen=True)
class Tier:
    start: Decimal
    end: Decimal | None
    unit_price: Decimal
    flat_fee: Decimal

    def holds(self, quantity: Decimal) -> bool:
        return quantity > self.start and (self.end is None or quantity <= self.end)


def plain(value: Decimal) -> str:
    """A decimal as a plain string (no exponent, no trailing zeros beyond the point)."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def overage_of(used: Decimal, included: Decimal) -> Decimal:
    return max(used - included, ZERO)


def tiers_of(stored: list[dict]) -> list[Tier]:
    """Stored tiers ({up_to, unit_price, flat_fee?}) as ranges of overage."""
    tiers, start = [], ZERO
    for tier in stored:
        end = None if tier.get("up_to") is None else Decimal(tier["up_to"])
        price, fee = Decimal(tier["unit_price"]), Decimal(tier.get("flat_fee") or 0)
        tiers.append(Tier(start, end, price, fee))
        start = end
    return tiers


def applied(tier: Tier, units: Decimal) -> AppliedTier:
    amount = units * tier.unit_price + tier.flat_fee
    return AppliedTier(tier.start, tier.end, units, tier.unit_price, tier.flat_fee, amount)


def graduated(overage: Decimal, tiers: list[Tier]) -> list[AppliedTier]:
    """Every tier the overage reaches, with the units inside it."""
    lines = []
    for tier in tiers:
        if overage <= tier.start:
            break
        top = overage if tier.end is None else min(overage, tier.end)
        lines.append(applied(tier, top - tier.start))
    return lines


def volume(overage: Decimal, tiers: list[Tier]) -> list[AppliedTier]:
    """The one tier holding the whole overage, pricing all of it."""
    reached = [tier for tier in tiers if tier.holds(overage)]
    return [applied(reached[0], overage)] if reached else []


def packages(overage: Decimal, item) -> Decimal:
    """Started packages: ceil(overage / package_size)."""
    return (overage / Decimal(item.package_size)).to_integral_value(rounding=ROUND_CEILING)


def per_unit(overage: Decimal, item) -> Decimal:
    return overage * item.unit_price


def per_package(overage: Decimal, item) -> Decimal:
    return packages(overage, item) * item.unit_price


@dataclass(frozen=True)
class ChargeRule:
    # (overage, tiers) -> the tiers applied; None: the model takes no tiers.
    by_tiers: Callable[[Decimal, list[Tier]], list[AppliedTier]] | None
    # (overage, item) -> the amount when the item has no tiers.
    without_tiers: Callable[[Decimal, object], Decimal]


CHARGE_MODELS: dict[str, ChargeRule] = {
    ChargeModel.GRADUATED: ChargeRule(by_tiers=graduated, without_tiers=per_unit),
    ChargeModel.VOLUME: ChargeRule(by_tiers=volume, without_tiers=per_unit),
    ChargeModel.PACKAGE: ChargeRule(by_tiers=None, without_tiers=per_package),
}


def rate_item(item, used: Decimal, currency: str) -> RatedItem:
    """Price one plan item's usage by its charge model; one rounding for the line."""
    overage = overage_of(used, item.included_quantity)
    model = item.charge_model or ChargeModel.GRADUATED
    rule = CHARGE_MODELS[model]
    if rule.by_tiers is not None and item.tiers:
        tiers = rule.by_tiers(overage, tiers_of(item.tiers)) if overage > 0 else []
        raw, unit_price = sum((t.amount for t in tiers), ZERO), None
    else:
        tiers, raw, unit_price = [], rule.without_tiers(overage, item), item.unit_price
    return RatedItem(
        used=used,
        included=item.included_quantity,
        overage=overage,
        unit_price=unit_price,
        charge_model=model,
        tiers=tiers,
        amount=round_money(raw, currency),
    )


def prorated_fee(base_fee: Decimal, starts_on: date, ends_on: date, currency: str) -> Decimal:
    """A monthly fee (base fee, minimum commitment) for the days from `starts_on` to
    `ends_on` of one month, by day."""
    month_days = days_in_month(starts_on)
    days = (ends_on - starts_on).days + 1
    if days >= month_days:
        return round_money(base_fee, currency)
    return round_money(base_fee * days / month_days, currency)


def true_up(minimum: Decimal, charged: Decimal) -> Decimal:
    """What brings a statement's charges up to its minimum commitment (never negative)."""
    return max(minimum - charged, ZERO)
