"""The rules of plans and subscriptions: what a valid plan, item and subscription
is, when a limit is reached and which alert thresholds are crossed.

Validation lives here once: the admin's model forms reach it through the models'
`clean()`, the serializers and forms call the same functions. No billing model
is imported here (the models import these rules); what needs a query is asked
by the caller.

One rule for thresholds and limits answers alerts, entitlements, the report's
plan bars and the statements page. A threshold is a percentage of the item's
base — its limit when it has one, else its included quantity — and is crossed
once usage reaches it (used × 100 ≥ base × threshold); the limit is reached at
used ≥ limit, so the 100 % alert, the blocked entitlement and the full plan bar
happen at the same unit. Plain Decimal arithmetic.
"""

from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError

from accounts.models import Tenant
from billing.choices import ChargeModel, OveragePolicy
from billing.money import validate_amount_for
from utilities.text import text_problem

MAX_THRESHOLD = 1000
# Who sells plans: the platform (no owner), partners and resellers. Organizations and
# agents only buy.
PLAN_OWNER_KINDS = (Tenant.Kind.PARTNER, Tenant.Kind.RESELLER)
# Bounds that keep every statement computable (no overflow in rating or storage).
MAX_UNIT_PRICE = Decimal("1000000")
PRICE_PLACES = 8
MAX_FEE = Decimal("100000000")
# Tier bounds count overage units: at most a quantity's 14 digits and 6 places.
MAX_QUANTITY = Decimal(10) ** 14
QUANTITY_PLACES = 6


def parse_decimal(value, what: str) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise ValidationError(f"{what} must be a number.")
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValidationError(f"{what} must be a number, not {value!r}.") from None
    if not number.is_finite():
        raise ValidationError(f"{what} must be a finite number.")
    if number < 0:
        raise ValidationError(f"{what} cannot be negative.")
    return number


def bounded(number: Decimal, what: str, *, maximum: Decimal, places: int) -> Decimal:
    """`number` unchanged, or ValidationError naming the bound it breaks."""
    number = Decimal(number)
    if number > maximum:
        raise ValidationError(f"{what} must be at most {maximum:,f}.")
    if number != number.quantize(Decimal(1).scaleb(-places)):
        raise ValidationError(f"{what} has at most {places} decimal places.")
    return number


def price_error(value, what: str) -> str | None:
    """Why a unit price is out of bounds, or None."""
    try:
        bounded(value, what, maximum=MAX_UNIT_PRICE, places=PRICE_PLACES)
    except ValidationError as error:
        return error.messages[0]
    return None


def clean_tiers(tiers) -> list[dict]:
    """Graduated tiers: `up_to` increasing, every tier closed but the last, which is open.

    Returns the tiers with decimal strings, as stored and shown by the API.
    """
    if tiers in (None, ""):
        return []
    if not isinstance(tiers, list):
        raise ValidationError("Tiers must be a list of {up_to, unit_price} objects.")
    cleaned, previous = [], Decimal(0)
    for position, tier in enumerate(tiers, start=1):
        if not isinstance(tier, dict) or set(tier) - {"up_to", "unit_price", "flat_fee"}:
            raise ValidationError(f"Tier {position}: use only up_to, unit_price and flat_fee.")
        what = f"Tier {position} unit_price"
        price = bounded(
            parse_decimal(tier.get("unit_price"), what),
            what,
            maximum=MAX_UNIT_PRICE,
            places=PRICE_PLACES,
        )
        fee = tier.get("flat_fee")
        what = f"Tier {position} flat_fee"
        fee = Decimal(0) if fee in (None, "") else parse_decimal(fee, what)
        fee = bounded(fee, what, maximum=MAX_FEE, places=PRICE_PLACES)
        up_to = tier.get("up_to")
        last = position == len(tiers)
        if up_to is None:
            if not last:
                raise ValidationError(
                    f"Tier {position}: only the last tier may be open (up_to null)."
                )
        else:
            what = f"Tier {position} up_to"
            up_to = bounded(
                parse_decimal(up_to, what), what, maximum=MAX_QUANTITY, places=QUANTITY_PLACES
            )
            if last:
                raise ValidationError(
                    "The last tier must be open (up_to null) to price every unit."
                )
            if up_to <= previous:
                raise ValidationError(
                    f"Tier {position}: up_to must be greater than the tier before ({previous})."
                )
            previous = up_to
        cleaned.append(
            {
                "up_to": None if up_to is None else str(up_to),
                "unit_price": str(price),
                "flat_fee": str(fee),
            }
        )
    return cleaned


def clean_thresholds(thresholds) -> list[int]:
    if thresholds in (None, ""):
        return []
    if not isinstance(thresholds, list):
        raise ValidationError("Thresholds must be a list of percentages, e.g. [80, 100].")
    cleaned = set()
    for value in thresholds:
        if isinstance(value, bool):
            raise ValidationError(f"{value!r} is not a percentage.")
        try:
            percent = int(str(value).strip())
        except ValueError:
            raise ValidationError(f"{value!r} is not a whole percentage.") from None
        if not 1 <= percent <= MAX_THRESHOLD:
            raise ValidationError(f"Thresholds are between 1 and {MAX_THRESHOLD} percent.")
        cleaned.add(percent)
    return sorted(cleaned)


def clean_plan_item(
    *,
    meter,
    included_quantity,
    limit,
    overage_policy,
    unit_price,
    tiers,
    thresholds,
    dimension=None,
    charge_model=ChargeModel.GRADUATED,
    package_size=None,
) -> dict:
    """Check one plan item; returns normalized tiers, thresholds and dimension or
    raises ValidationError with a message per field."""
    errors, cleaned = {}, {"dimension": None if dimension in (None, "") else dimension}
    dimension_problem = dimension_error(meter, cleaned["dimension"])
    if dimension_problem:
        errors["dimension"] = [dimension_problem]
    for field, check, value in (
        ("tiers", clean_tiers, tiers),
        ("thresholds", clean_thresholds, thresholds),
    ):
        try:
            cleaned[field] = check(value)
        except ValidationError as error:
            errors[field] = error.messages
    if overage_policy == OveragePolicy.BLOCK and limit is None:
        errors["limit"] = ["A block item needs a limit: usage is refused once it is reached."]
    if limit is not None and included_quantity is not None and limit < included_quantity:
        errors["limit"] = ["The limit cannot be below the included quantity."]
    errors.update(charge_model_errors(charge_model, package_size, unit_price, cleaned, errors))
    if "unit_price" in errors:
        pass
    elif unit_price is None and not cleaned.get("tiers") and "tiers" not in errors:
        errors["unit_price"] = ["Give a unit price for the overage, or tiers to price it."]
    elif unit_price is not None and unit_price < 0:
        errors["unit_price"] = ["Prices cannot be negative."]
    elif unit_price is not None and (problem := price_error(unit_price, "The unit price")):
        errors["unit_price"] = [problem]
    if errors:
        raise ValidationError(errors)
    return cleaned


def dimension_error(meter, dimension: str | None) -> str | None:
    """Why an item may not price this dimension of its meter, or None."""
    if dimension is None or meter is None:
        return None
    if not meter.group_by:
        return f"{meter.code} is not broken down by any attribute; its items take no dimension."
    if problem := text_problem(dimension):
        return problem
    if len(dimension) > 256:
        return "The dimension has at most 256 characters."
    return None


def charge_model_errors(charge_model, package_size, unit_price, cleaned, errors) -> dict:
    """What the item's charge model needs: volume tiers, a package size and price."""
    found = {}
    tiers = cleaned.get("tiers")
    if charge_model == ChargeModel.VOLUME and not tiers and "tiers" not in errors:
        found["tiers"] = ["A volume item needs tiers: the tier the overage reaches prices it."]
    if charge_model == ChargeModel.PACKAGE:
        if not package_size or package_size < 1:
            found["package_size"] = ["A package item needs a package size of at least 1 unit."]
        if tiers:
            found["tiers"] = ["A package item is priced per package, not by tiers."]
        if unit_price is None:
            found["unit_price"] = ["A package item needs a unit price: the price of a package."]
    elif package_size is not None:
        found["package_size"] = ["Only package items have a package size."]
    return found


def duplicate_meter_errors(items: list) -> dict[int, str]:
    """Index -> message for every item repeating a (meter, dimension) already in the
    plan. Items are meters, or (meter, dimension) pairs."""
    seen, errors = set(), {}
    for index, entry in enumerate(items):
        meter, dimension = entry if isinstance(entry, tuple) else (entry, None)
        if meter is None:
            continue
        code = getattr(meter, "code", meter)
        if (meter, dimension) in seen:
            errors[index] = (
                f"{code} appears more than once in this plan."
                if dimension is None
                else f"{code} ({dimension}) appears more than once in this plan."
            )
        seen.add((meter, dimension))
    return errors


def plan_errors(*, owner, customer, currency, base_fee, minimum_commitment=None) -> dict:
    errors = validate_amount_for(currency, base_fee, "base_fee")
    errors.update(validate_amount_for(currency, minimum_commitment, "minimum_commitment"))
    if minimum_commitment is not None and minimum_commitment > MAX_FEE:
        errors["minimum_commitment"] = f"The minimum commitment must be at most {MAX_FEE:,f}."
    if owner is not None and owner.kind not in PLAN_OWNER_KINDS:
        errors["owner"] = owner_kind_error(owner)
    if base_fee is not None and base_fee > MAX_FEE:
        errors["base_fee"] = f"The base fee must be at most {MAX_FEE:,f}."
    if customer is not None and owner is not None and not is_strictly_inside(customer, owner):
        errors["customer"] = f"A custom plan's customer must be inside {owner.name}'s tree."
    return errors


def owner_kind_error(owner: Tenant) -> str:
    kind = Tenant.Kind(owner.kind).label.lower()
    return (
        f"Plans are sold by the platform (no owner), a partner or a reseller; "
        f"{owner.name} is an {kind}."
    )


def is_strictly_inside(tenant: Tenant, ancestor: Tenant) -> bool:
    return tenant.pk != ancestor.pk and ancestor.contains(tenant)


def plan_usable_by(plan, tenant: Tenant) -> str | None:
    """Why `tenant` cannot subscribe to `plan`, or None when it can."""
    if plan.customer_id is not None and plan.customer_id != tenant.pk:
        return f"{plan.code} is a custom plan for another customer."
    if plan.owner_id is not None and not is_strictly_inside(tenant, plan.owner):
        return f"{plan.code} can only be used inside {plan.owner.name}'s tree."
    return None


def subscription_errors(subscription) -> dict:
    """What is wrong with a subscription's own fields and its plan (the overlap with
    the tenant's other subscriptions needs the database: see overlap_error)."""
    errors = {}
    if (
        subscription.ends_on
        and subscription.starts_on
        and subscription.ends_on < subscription.starts_on
    ):
        errors["ends_on"] = "The end date cannot be before the start date."
    if subscription.plan_id and subscription.tenant_id:
        reason = plan_usable_by(subscription.plan, subscription.tenant)
        if reason:
            errors["plan"] = reason
        elif subscription._state.adding and not subscription.plan.is_active:
            errors["plan"] = f"{subscription.plan.code} is no longer offered."
    return errors


def overlap_error(subscription, clash) -> str:
    until = clash.ends_on.isoformat() if clash.ends_on else "open-ended"
    return (
        f"{subscription.tenant.name} already has a subscription to {clash.plan.code} "
        f"from {clash.starts_on} ({until}); one active subscription at a time."
    )


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
