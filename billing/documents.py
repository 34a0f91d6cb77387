"""Statement documents: a statement as a PDF, in its issuer's brand.

The issuer is the owner of the plan the statement bills (the plan in force at the
end of the month, whose currency the statement is in); a platform plan is issued
in the platform's brand. The document is an HTML template laid out by WeasyPrint;
every amount is written by `billing.money`, as on the portal's pages, from the
stored statement the API serves, so the PDF and the API agree to the digit.
"""

import base64
from dataclasses import dataclass
from decimal import Decimal

from django.http import HttpResponse
from django.template.loader import render_to_string

from accounts.brands import EffectiveBrand, effective_brand, platform_brand
from accounts.models import Brand, Tenant
from billing.models import Plan, Statement, StatementLine
from billing.money import format_money, format_price, money_text
from billing.periods import month_end
from billing.selectors import StatementPricing, statement_pricing, subscription_covering
from utilities.numbers import format_quantity

TEMPLATE = "billing/statement.html"
DRAFT_NUMBER = "Draft"


@dataclass(frozen=True)
class DocumentTier:
    span: str  # "0–100", "100–∞"
    units: str
    unit_price: str
    flat_fee: str  # empty when the tier has none
    amount: str


@dataclass(frozen=True)
class DocumentLine:
    meter: str
    dimension: str
    plan: str
    days: str
    used: str
    included: str
    overage: str
    unit: str
    unit_price: str
    charge_model: str
    tiers: list[DocumentTier]
    amount: str


@dataclass(frozen=True)
class StatementDocument:
    statement: Statement
    number: str  # "Draft" until final
    issuer: EffectiveBrand
    issuer_tenant: Tenant | None  # None: the platform
    logo: str  # the logo as a data: URI; empty without one
    customer: Tenant
    lines: list[DocumentLine]
    base_fee: str
    usage_amount: str
    minimum_commitment: str
    true_up: str
    total: str

    @property
    def is_draft(self) -> bool:
        return self.statement.status == Statement.Status.DRAFT


def issuing_plan(statement: Statement) -> Plan | None:
    """The plan in force at the end of the statement's month; when its subscription
    is gone, the plan of the statement's last line."""
    subscription = subscription_covering(
        statement.tenant, statement.period, month_end(statement.period)
    )
    if subscription is not None:
        return subscription.plan
    code = statement.lines.order_by("-starts_on").values_list("plan_code", flat=True).first()
    return Plan.objects.filter(code=code).select_related("owner").first() if code else None


def issuer_of(plan: Plan | None) -> tuple[Tenant | None, EffectiveBrand]:
    if plan is None or plan.owner is None:
        return None, platform_brand()
    return plan.owner, effective_brand(plan.owner)


def logo_data_uri(brand: EffectiveBrand) -> str:
    """The brand's stored logo inline: the renderer fetches nothing from anywhere."""
    if not brand.logo_src or brand.tenant_id is None:
        return ""
    row = Brand.objects.filter(tenant_id=brand.tenant_id).values_list("logo", "logo_type").first()
    if not row or not row[0] or not row[1]:
        return ""
    return f"data:{row[1]};base64,{base64.b64encode(bytes(row[0])).decode()}"


def document_tiers(tiers, currency: str) -> list[DocumentTier]:
    shown = []
    for tier in tiers or ():
        upper = "∞" if tier.get("to") is None else format_quantity(tier["to"])
        fee = Decimal(tier.get("flat_fee") or 0)
        shown.append(
            DocumentTier(
                span=f"{format_quantity(tier['from'])}–{upper}",
                units=format_quantity(tier["units"]),
                unit_price=format_price(tier["unit_price"], currency),
                flat_fee=format_money(fee, currency) if fee else "",
                amount=format_money(tier["amount"], currency),
            )
        )
    return shown


def document_line(line: StatementLine, pricing: StatementPricing, currency: str) -> DocumentLine:
    return DocumentLine(
        meter=line.meter.name,
        dimension=line.dimension or "",
        plan=pricing.plan_label(line.plan_code),
        days=f"{line.starts_on:%Y-%m-%d} – {line.ends_on:%Y-%m-%d}",
        used=format_quantity(line.used),
        included=format_quantity(line.included),
        overage=format_quantity(line.overage),
        unit=line.meter.unit,
        unit_price=format_price(line.unit_price, currency) if line.unit_price is not None else "",
        charge_model=line.charge_model,
        tiers=document_tiers(line.tiers, currency),
        amount=format_money(line.amount, currency),
    )


def statement_document(statement: Statement) -> StatementDocument:
    """Everything the document shows, written out."""
    currency = statement.currency
    issuer_tenant, issuer = issuer_of(issuing_plan(statement))
    pricing = statement_pricing(statement)
    lines = statement.lines.select_related("meter")
    return StatementDocument(
        statement=statement,
        number=statement.number or DRAFT_NUMBER,
        issuer=issuer,
        issuer_tenant=issuer_tenant,
        logo=logo_data_uri(issuer),
        customer=statement.tenant,
        lines=[document_line(line, pricing, currency) for line in lines],
        base_fee=money_text(statement.base_fee, currency),
        usage_amount=money_text(statement.usage_amount, currency),
        minimum_commitment=money_text(statement.minimum_commitment, currency),
        true_up=money_text(statement.true_up, currency),
        total=money_text(statement.total, currency),
    )


def document_filename(statement: Statement) -> str:
    return f"statement-{statement.tenant.slug}-{statement.period:%Y-%m}.pdf"


def statement_pdf(statement: Statement) -> bytes:
    """The statement as a PDF document."""
    # Imported here: WeasyPrint loads Pango when imported, and a machine without it
    # should lose its PDFs, not the whole portal.
    from weasyprint import HTML
    from weasyprint.urls import URLFetcher

    html = render_to_string(TEMPLATE, {"doc": statement_document(statement)})
    # Only inline data (the logo): a document never makes the server fetch a URL.
    fetcher = URLFetcher(allowed_protocols=("data",), allow_redirects=False, timeout=1)
    return HTML(string=html, url_fetcher=fetcher).write_pdf()


def statement_pdf_response(statement: Statement) -> HttpResponse:
    """The document as a download, for the portal's page and the API alike."""
    response = HttpResponse(statement_pdf(statement), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{document_filename(statement)}"'
    return response
