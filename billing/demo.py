"""Demo billing: a wholesale plan per reseller, three retail plans per reseller, a
subscription for every organization, and a few organizations on tight custom plans
that run over their limits (so alerts and blocked entitlements show).

Every charge model shows: storage priced per tier (hot, cool, the rest), processing
by activity (transcription and OCR apart, OCR by volume), chat sessions in packages,
call minutes in graduated tiers with a flat fee, a volume-priced wholesale plan, and
a minimum commitment on the enterprise plan.

Idempotent: plans are kept by code, subscriptions only added where none exists.
"""

from datetime import date
from decimal import Decimal as D

from accounts.models import Tenant
from billing.alerts import check_alerts
from billing.closing import close_months
from billing.models import Plan, PlanItem, Subscription
from billing.periods import previous_month
from billing.plans import duplicate_plan, save_plan
from billing.statements import refresh_drafts
from metering.models import Meter

# meter: (included per tier starter/growth/enterprise, unit price, thresholds)
RETAIL_ITEMS = {
    "call_minutes": ((40_000, 80_000, 160_000), "0.025", [80, 100]),
    "chat_sessions": ((2_500, 5_000, 10_000), "0.02", [80, 100]),
    "emails": ((2_500, 5_000, 10_000), "0.002", [80, 100]),
    "processing_units": ((50_000, 100_000, 200_000), "0.04", [80, 100]),
    "bandwidth_units": ((800, 1_500, 3_000), "0.09", [100]),
    "storage_units": ((500, 1_000, 2_000), "0.03", [90]),
    "licenses": ((60, 120, 250), "4.00", [100]),
    "portals": ((5, 10, 20), "15.00", [100]),
}
RETAIL_PLANS = (("starter", "Starter", D("299")), ("growth", "Growth", D("799")),
                ("enterprise", "Enterprise", D("1999")))  # fmt: skip
# Wholesale: what the reseller pays upstream for every unit of its whole tree.
WHOLESALE_PRICES = {
    "call_minutes": "0.004", "chat_sessions": "0.003", "emails": "0.0004",
    "processing_units": "0.005", "bandwidth_units": "0.02", "storage_units": "0.006",
    "licenses": "1.00", "portals": "4.00",
}  # fmt: skip
CALL_TIERS = [
    {"up_to": "20000", "unit_price": "0.025"},
    {"up_to": None, "unit_price": "0.018", "flat_fee": "25"},
]
# Items per dimension value: (dimension, share of the meter's allowance, price, model
# fields). The item with dimension None prices every other value.
DIMENSION_ITEMS = {
    "storage_units": [
        ("hot", D("0.2"), "0.06", {}),
        ("cool", D("0.3"), "0.02", {}),
        (None, D("0.5"), "0.004", {}),
    ],
    "processing_units": [
        ("transcription", D("0.5"), "0.03", {}),
        ("ocr", D("0.1"), None, {"charge_model": "volume", "tiers": [
            {"up_to": "10000", "unit_price": "0.08"},
            {"up_to": "50000", "unit_price": "0.06", "flat_fee": "50"},
            {"up_to": None, "unit_price": "0.05", "flat_fee": "200"},
        ]}),
        (None, D("0.4"), "0.04", {}),
    ],
}  # fmt: skip
# Chat sessions are sold in packs of 100.
CHAT_PACKAGE = {"charge_model": "package", "package_size": 100, "unit_price": D("1.50")}
ENTERPRISE_MINIMUM = D("2500")
# Wholesale call minutes by volume: the tier the month's total reaches prices all of it.
WHOLESALE_CALL_TIERS = [
    {"up_to": "100000", "unit_price": "0.004"},
    {"up_to": "1000000", "unit_price": "0.0035"},
    {"up_to": None, "unit_price": "0.003"},
]
TIGHT_EMAIL_LIMIT = D("400")


def load_demo_billing(today: date) -> dict:
    meters = {m.code: m for m in Meter.objects.filter(code__in=RETAIL_ITEMS)}
    starts_on = previous_month(today)
    plans = subscriptions = 0
    for reseller in Tenant.objects.filter(kind=Tenant.Kind.RESELLER).order_by("slug"):
        plans += ensure_wholesale_plan(reseller, meters, starts_on)
        retail = [
            ensure_retail_plan(reseller, spec, n, meters) for n, spec in enumerate(RETAIL_PLANS)
        ]
        plans += len(retail)
        organizations = reseller.get_children().filter(kind=Tenant.Kind.ORGANIZATION)
        for position, org in enumerate(organizations.order_by("slug")):
            if Subscription.objects.filter(tenant=org).exists():
                continue
            plan = retail[position % 3]
            if position == 0:
                plan = tight_custom_plan(plan, org)
            Subscription.objects.create(tenant=org, plan=plan, starts_on=starts_on)
            subscriptions += 1
    closed = close_months(today)
    drafts = refresh_drafts(today)
    alerts = closed["alerts"] + len(check_alerts(today=today))
    return {"plans": plans, "subscriptions": subscriptions, "final": closed["finalized"],
            "drafts": drafts, "alerts": alerts}  # fmt: skip


def ensure_wholesale_plan(reseller: Tenant, meters: dict, starts_on: date) -> int:
    code = f"{reseller.slug}-wholesale"
    plan = Plan.objects.filter(code=code).first()
    if plan is None:
        plan = Plan(
            code=code,
            name=f"Wholesale — {reseller.name}",
            owner=reseller.parent,  # the partner, or the platform for a top-level reseller
            customer=reseller,
            currency=reseller.currency,
            base_fee=D("500"),
        )
        items = [
            {"meter": meters[code], "unit_price": D(price), "thresholds": []}
            for code, price in WHOLESALE_PRICES.items()
        ]
        calls = next(item for item in items if item["meter"].code == "call_minutes")
        calls.update(charge_model="volume", unit_price=None, tiers=WHOLESALE_CALL_TIERS)
        save_plan(plan=plan, items=items)
    if not Subscription.objects.filter(tenant=reseller).exists():
        Subscription.objects.create(tenant=reseller, plan=plan, starts_on=starts_on)
    return 1


def ensure_retail_plan(reseller: Tenant, spec, level: int, meters: dict) -> Plan:
    suffix, name, base_fee = spec
    code = f"{reseller.slug}-{suffix}"
    plan = Plan.objects.filter(code=code).first()
    if plan is not None:
        return plan
    items = []
    for meter_code, (included, price, thresholds) in RETAIL_ITEMS.items():
        allowance = D(included[level])
        item = {
            "meter": meters[meter_code],
            "included_quantity": allowance,
            "unit_price": D(price),
            "thresholds": thresholds,
        }
        if meter_code == "call_minutes":
            item["tiers"] = CALL_TIERS
        if meter_code == "chat_sessions":
            item.update(CHAT_PACKAGE)
        if meter_code == "licenses":
            # Seats are capped: the integration asks before adding one.
            item.update(limit=allowance * 2, overage_policy=PlanItem.OveragePolicy.BLOCK)
        items += per_dimension(item) if meter_code in DIMENSION_ITEMS else [item]
    plan = Plan(
        code=code,
        name=name,
        owner=reseller,
        currency=reseller.currency,
        base_fee=base_fee,
        minimum_commitment=ENTERPRISE_MINIMUM if suffix == "enterprise" else D("0"),
    )
    return save_plan(plan=plan, items=items)


def per_dimension(item: dict) -> list[dict]:
    """The meter's item split into one item per listed dimension value and the rest,
    each with its share of the allowance and its own price."""
    split = []
    for dimension, share, price, model in DIMENSION_ITEMS[item["meter"].code]:
        part = {
            **item,
            "dimension": dimension,
            "included_quantity": item["included_quantity"] * share,
        }
        part.update(unit_price=None if price is None else D(price), **model)
        split.append(part)
    return split


def tight_custom_plan(plan: Plan, org: Tenant) -> Plan:
    """A custom deal with a low email cap, so this organization runs over it."""
    code = f"{plan.code}-{org.slug}"[:64]
    existing = Plan.objects.filter(code=code).first()
    if existing is not None:
        return existing
    custom = duplicate_plan(plan, customer=org, code=code, name=f"{plan.name} (custom)")
    emails = custom.items.get(meter__code="emails")
    emails.included_quantity = TIGHT_EMAIL_LIMIT / 2
    emails.limit = TIGHT_EMAIL_LIMIT
    emails.overage_policy = PlanItem.OveragePolicy.BLOCK
    emails.full_clean()
    emails.save()
    return custom
