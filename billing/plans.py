"""The rules of plans and subscriptions, shared by the admin and the API.

Validation lives here once: the admin's model forms reach it through the models'
`clean()`, the serializers call the same functions. Writes that need more than a
model save (changing plan mid-period, duplicating a plan) are services here too.
"""

from datetime import date, timedelta
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import Tenant
from accounts.services import user_can_manage
from billing.models import Plan, PlanItem, Subscription
from billing.money import validate_amount_for

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
        if not isinstance(tier, dict) or set(tier) - {"up_to", "unit_price"}:
            raise ValidationError(f"Tier {position}: use only up_to and unit_price.")
        what = f"Tier {position} unit_price"
        price = bounded(
            parse_decimal(tier.get("unit_price"), what),
            what,
            maximum=MAX_UNIT_PRICE,
            places=PRICE_PLACES,
        )
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
        cleaned.append({"up_to": None if up_to is None else str(up_to), "unit_price": str(price)})
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
    *, meter, included_quantity, limit, overage_policy, unit_price, tiers, thresholds
) -> dict:
    """Check one plan item; returns normalized tiers and thresholds or raises
    ValidationError with a message per field."""
    errors, cleaned = {}, {}
    for field, check, value in (
        ("tiers", clean_tiers, tiers),
        ("thresholds", clean_thresholds, thresholds),
    ):
        try:
            cleaned[field] = check(value)
        except ValidationError as error:
            errors[field] = error.messages
    if overage_policy == PlanItem.OveragePolicy.BLOCK and limit is None:
        errors["limit"] = ["A block item needs a limit: usage is refused once it is reached."]
    if limit is not None and included_quantity is not None and limit < included_quantity:
        errors["limit"] = ["The limit cannot be below the included quantity."]
    if unit_price is None and not cleaned.get("tiers") and "tiers" not in errors:
        errors["unit_price"] = ["Give a unit price for the overage, or tiers to price it."]
    elif unit_price is not None and unit_price < 0:
        errors["unit_price"] = ["Prices cannot be negative."]
    elif unit_price is not None and (problem := price_error(unit_price, "The unit price")):
        errors["unit_price"] = [problem]
    if errors:
        raise ValidationError(errors)
    return cleaned


def duplicate_meter_errors(meters: list) -> dict[int, str]:
    """Index -> message for every item repeating a meter already in the plan."""
    seen, errors = set(), {}
    for index, meter in enumerate(meters):
        if meter is None:
            continue
        if meter in seen:
            errors[index] = f"{getattr(meter, 'code', meter)} appears more than once in this plan."
        seen.add(meter)
    return errors


def plan_errors(*, owner, customer, currency, base_fee) -> dict:
    errors = validate_amount_for(currency, base_fee, "base_fee")
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
    return tenant.pk != ancestor.pk and tenant.is_descendant_of(ancestor)


def plan_usable_by(plan: Plan, tenant: Tenant) -> str | None:
    """Why `tenant` cannot subscribe to `plan`, or None when it can."""
    if plan.customer_id is not None and plan.customer_id != tenant.pk:
        return f"{plan.code} is a custom plan for another customer."
    if plan.owner_id is not None and not is_strictly_inside(tenant, plan.owner):
        return f"{plan.code} can only be used inside {plan.owner.name}'s tree."
    return None


def subscription_errors(subscription: Subscription) -> dict:
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
    if subscription.tenant_id and subscription.starts_on and "ends_on" not in errors:
        clash = overlapping(subscription).first()
        if clash is not None:
            until = clash.ends_on.isoformat() if clash.ends_on else "open-ended"
            errors["starts_on"] = (
                f"{subscription.tenant.name} already has a subscription to {clash.plan.code} "
                f"from {clash.starts_on} ({until}); one active subscription at a time."
            )
    return errors


def overlapping(subscription: Subscription):
    return (
        Subscription.objects.in_force(subscription.starts_on, subscription.ends_on)
        .filter(tenant_id=subscription.tenant_id)
        .exclude(pk=subscription.pk)
        .select_related("plan")
    )


def can_sell(user, plan: Plan) -> bool:
    """Subscriptions to a plan are made by whoever manages its owner (platform: superusers)."""
    return user_can_manage(user, plan.owner)


def usable_plans(user):
    """The plans a user may subscribe customers to."""
    plans = Plan.objects.filter(is_active=True)
    if user.is_superuser:
        return plans
    return plans.filter(owner__in=Tenant.objects.managed_by(user))


@transaction.atomic
def subscribe(*, tenant: Tenant, plan: Plan, starts_on: date, ends_on: date | None = None):
    """Put `tenant` on `plan` from `starts_on`. An open subscription that started
    earlier is ended the day before: a plan change mid-period, prorated by day."""
    current = (
        Subscription.objects.select_for_update()
        .filter(tenant=tenant, ends_on__isnull=True, starts_on__lt=starts_on)
        .first()
    )
    if current is not None:
        current.ends_on = starts_on - timedelta(days=1)
        current.save(update_fields=["ends_on"])
    subscription = Subscription(tenant=tenant, plan=plan, starts_on=starts_on, ends_on=ends_on)
    subscription.full_clean()
    subscription.save()
    return subscription


@transaction.atomic
def duplicate_plan(plan: Plan, *, customer: Tenant, code: str, name: str = "") -> Plan:
    """A copy of `plan` and its items, usable only by `customer` (a custom deal)."""
    copy = Plan(
        code=code,
        name=name or f"{plan.name} — {customer.name}",
        owner=plan.owner,
        customer=customer,
        currency=plan.currency,
        base_fee=plan.base_fee,
        billing_period=plan.billing_period,
        description=plan.description,
    )
    copy.full_clean()
    copy.save()
    for item in plan.items.all():
        item.pk = None
        item.plan = copy
        item.save()
    return copy


ITEM_FIELDS = (
    "included_quantity",
    "limit",
    "overage_policy",
    "unit_price",
    "tiers",
    "thresholds",
)


@transaction.atomic
def save_plan(*, plan: Plan, items: list[dict] | None) -> Plan:
    """Save a plan and, when `items` is given, make its items exactly these.

    Items are matched by meter, so an item that stays keeps its history and its
    alerts; items whose meter is no longer listed are removed.
    """
    plan.full_clean()
    plan.save()
    if items is None:
        return plan
    current = {item.meter_id: item for item in plan.items.all()}
    keep = []
    for data in items:
        item = current.get(data["meter"].pk) or PlanItem(plan=plan, meter=data["meter"])
        for name in ITEM_FIELDS:
            if name in data:
                setattr(item, name, data[name])
        item.full_clean()
        item.save()
        keep.append(item.pk)
    for item in plan.items.exclude(pk__in=keep):
        item.delete()
    return plan


def subscription_covering(tenant: Tenant, start: date, end: date) -> Subscription | None:
    """The tenant's subscription in force at the end of the days start..end (the
    latest one that started by then and had not ended before `start`)."""
    return (
        Subscription.objects.in_force(start, end)
        .filter(tenant=tenant)
        .select_related("plan")
        .order_by("-starts_on")
        .first()
    )
