"""A closed month billed on a branded reseller's tiered plan, for the statement
document and statement mail tests."""

import base64
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal as D
from io import BytesIO

from django.utils import timezone
from pypdf import PdfReader

from accounts.brands import put_logo
from accounts.models import Brand, Tenant
from billing.models import Plan, PlanItem, Statement
from billing.periods import month_of, previous_month
from billing.plans import subscribe
from billing.statements import refresh_statement
from metering.models import Meter
from tests.billing.conftest import send

# A 1×1 PNG: the logo the reseller's brand carries.
PIXEL_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
BRAND_NAME = "Alpha Telecom"


def closed_month():
    return previous_month(month_of(timezone.now().date()))


def last_day_noon(period):
    """Noon of the period's last day: always within the back-dating window."""
    day = month_of(period + timedelta(days=32)) - timedelta(days=1)
    return datetime.combine(day, time(12), tzinfo=UTC)


def brand_reseller(reseller: Tenant, logo: bool = True) -> Brand:
    brand = Brand(tenant=reseller, name=BRAND_NAME, primary_color="#1d4e89",
                  support_email="billing@alpha.example")  # fmt: skip
    if logo:
        put_logo(brand, PIXEL_PNG)
    brand.save()
    return brand


def tiered_plan(owner: Tenant, code: str = "a-tiered", **fields) -> Plan:
    """Base fee 1,000, a minimum of 1,500 (so a true-up), call minutes with 10 included
    and two graduated tiers over them (the second with a flat fee)."""
    plan = Plan.objects.create(
        code=code, name="Tiered Retail", owner=owner, base_fee=D("1000"),
        minimum_commitment=D("1500"), **fields,
    )  # fmt: skip
    PlanItem.objects.create(
        plan=plan, meter=Meter.objects.get(code="call_minutes"), included_quantity=D("10"),
        unit_price=None,
        tiers=[{"up_to": "5", "unit_price": "0.5", "flat_fee": "0"},
               {"up_to": None, "unit_price": "0.4", "flat_fee": "1.25"}],
    )  # fmt: skip
    return plan


def bill_closed_month(tenant: Tenant, plan: Plan, minutes: str = "22.5") -> Statement:
    """The tenant on `plan` for the closed month, with usage, rated as a draft."""
    period = closed_month()
    subscribe(tenant=tenant, plan=plan, starts_on=period)
    agent = tenant.get_descendants().filter(kind=Tenant.Kind.AGENT).first() or tenant
    send({"tenant": agent.slug, "meter": "call_minutes", "quantity": minutes,
          "at": last_day_noon(period)})  # fmt: skip
    return refresh_statement(tenant, period)


def pdf_text(data: bytes) -> str:
    """The PDF's text, whitespace collapsed (table cells come out space-separated)."""
    reader = PdfReader(BytesIO(data))
    return " ".join(" ".join(page.extract_text() or "" for page in reader.pages).split())


def pdf_images(data: bytes) -> int:
    return sum(len(page.images) for page in PdfReader(BytesIO(data)).pages)


def grouped(amount: str) -> str:
    """An API amount ("1234.50") as documents and pages group it ("1,234.50")."""
    return f"{D(amount):,f}"
