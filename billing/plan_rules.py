"""When a plan item's limit is reached and which of its alert thresholds are crossed.

One rule for every surface that answers it: alerts, entitlements, the report's
plan bars and the statements page. A threshold is a percentage of the item's
base — its limit when it has one, else its included quantity — and is crossed
once usage reaches it (used × 100 ≥ base × threshold); the limit is reached at
used ≥ limit, so the 100 % alert, the blocked entitlement and the full plan bar
happen at the same unit. Plain Decimal arithmetic: no model is imported here.
"""

from decimal import Decimal


def alert_base(limit: Decimal | None, included: Decimal) -> Decimal:
    """What thresholds are percentages of: the limit when there is one."""
    return limit if limit is not None else included


def threshold_crossed(used: Decimal, base: Decimal, threshold: int) -> bool:
    """Multiplied out rather than divided, so no rounding decides a crossing."""
    return base > 0 and used * 100 >= base * threshold


def thresholds_crossed(used: Decimal, base: Decimal, thresholds) -> tuple[int, ...]:
    return tuple(t for t in sorted(thresholds) if threshold_crossed(used, base, t))


def limit_reached(used: Decimal, limit: Decimal | None) -> bool:
    """A limit is reached when usage equals it: the next unit would go beyond."""
    return limit is not None and used >= limit


def allowance_used_up(used: Decimal, base: Decimal) -> bool:
    """The plan bar's "over": the base is used up (with no base, any usage is over it)."""
    return used >= base if base > 0 else used > 0
