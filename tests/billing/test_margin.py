"""Margin at every selling level — the platform, a partner, a reseller — against an
independent computation from the stored statement lines and the usage sent.

One month (March 2026) of a small market:

    platform plans: plat-partner, plat-reseller
    north (partner, on plat-partner)
      r-one (reseller, on north-wholesale)
        o-a (one-basic), o-b (one-pro), o-eur (one-euro, billed in EUR)
        o-c (one-basic until the 15th, then north's north-direct: two sellers)
      r-two (reseller, plat-reseller until the 15th, then north-wholesale)
        o-d (two-std), o-free (no subscription: usage nobody bills)
    r-solo (reseller under the platform, on plat-reseller)
      o-s (solo-std)

Statements come from the real rating (`refresh_drafts`); the expectation below
re-derives retail, wholesale and the per-customer chargeback from the stored lines,
the scenario's subscriptions and the raw usage, with exact fractions.
"""

import csv
import io
from calendar import monthrange
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from math import floor

import pytest

from accounts.models import Tenant
from billing.margin import seller_margin
from billing.models import Plan, PlanItem, Statement
from billing.plans import subscribe
from billing.statements import refresh_drafts
from metering.models import Meter
from tests.billing.conftest import rollup, send
from tests.factories import make_tenant, make_user

PERIOD = date(2026, 3, 1)
CHANGE = date(2026, 3, 16)  # the mid-month plan changes
DAYS = monthrange(PERIOD.year, PERIOD.month)[1]
CENT = Decimal("0.01")

# code: (owner slug or None for the platform, currency, base fee, {meter: (included, price)})
PLANS = {
    "plat-partner": (None, "USD", "200", {"call_minutes": (0, "0.01"),
                                           "processing_units": (0, "0.001")}),
    "plat-reseller": (None, "USD", "150", {"call_minutes": (0, "0.015"),
                                            "processing_units": (0, "0.0015")}),
    "north-wholesale": ("north", "USD", "300", {"call_minutes": (0, "0.02"),
                                                 "processing_units": (0, "0.002")}),
    "north-direct": ("north", "USD", "120", {"call_minutes": (0, "0.4")}),
    "one-basic": ("r-one", "USD", "100", {"call_minutes": (10, "0.5")}),
    "one-pro": ("r-one", "USD", "250", {"call_minutes": (100, "0.3"),
                                         "processing_units": (0, "0.01")}),
    "one-euro": ("r-one", "EUR", "90", {"call_minutes": (0, "0.45")}),
    "two-std": ("r-two", "USD", "80", {"call_minutes": (0, "0.25")}),
    "solo-std": ("r-solo", "USD", "60", {"call_minutes": (0, "0.2")}),
}  # fmt: skip

# slug: (kind, parent slug)
TREE = {
    "north": ("partner", None),
    "r-one": ("reseller", "north"),
    "o-a": ("organization", "r-one"),
    "ag-a": ("agent", "o-a"),
    "o-b": ("organization", "r-one"),
    "ag-b": ("agent", "o-b"),
    "o-c": ("organization", "r-one"),
    "ag-c": ("agent", "o-c"),
    "o-eur": ("organization", "r-one"),
    "r-two": ("reseller", "north"),
    "o-d": ("organization", "r-two"),
    "ag-d": ("agent", "o-d"),
    "o-free": ("organization", "r-two"),
    "r-solo": ("reseller", None),
    "o-s": ("organization", "r-solo"),
    "ag-s": ("agent", "o-s"),
}

# tenant: [(plan, first day, last day)] — the subscriptions, as the scenario states them
SEGMENTS = {
    "north": [("plat-partner", 1, 31)],
    "r-one": [("north-wholesale", 1, 31)],
    "r-two": [("plat-reseller", 1, 15), ("north-wholesale", 16, 31)],
    "r-solo": [("plat-reseller", 1, 31)],
    "o-a": [("one-basic", 1, 31)],
    "o-b": [("one-pro", 1, 31)],
    "o-c": [("one-basic", 1, 15), ("north-direct", 16, 31)],
    "o-eur": [("one-euro", 1, 31)],
    "o-d": [("two-std", 1, 31)],
    "o-s": [("solo-std", 1, 31)],
}

# (tenant, meter, quantity, day of March)
USAGE = [
    ("ag-a", "call_minutes", "30", 3), ("ag-a", "call_minutes", "12.5", 20),
    ("ag-a", "processing_units", "1000", 5),
    ("ag-b", "call_minutes", "250", 10), ("ag-b", "processing_units", "5000", 25),
    ("ag-c", "call_minutes", "40", 8), ("ag-c", "call_minutes", "60", 22),
    ("o-eur", "call_minutes", "20", 12),
    ("ag-d", "call_minutes", "70", 4), ("ag-d", "call_minutes", "33.3", 28),
    ("o-free", "call_minutes", "11", 18),
    ("ag-s", "call_minutes", "15", 9),
]  # fmt: skip


@pytest.fixture
def market(db):
    tenants = {}
    for slug, (kind, parent) in TREE.items():
        currency = "EUR" if slug == "o-eur" else "USD"
        tenants[slug] = make_tenant(kind, tenants.get(parent), slug=slug, currency=currency)
    meters = {m.code: m for m in Meter.objects.all()}
    plans = {}
    for code, (owner, currency, base_fee, items) in PLANS.items():
        plans[code] = Plan.objects.create(
            code=code, name=code.title(), owner=tenants.get(owner), currency=currency,
            base_fee=Decimal(base_fee),
        )  # fmt: skip
        for meter, (included, price) in items.items():
            PlanItem.objects.create(
                plan=plans[code], meter=meters[meter], included_quantity=Decimal(included),
                unit_price=Decimal(price),
            )  # fmt: skip
    for slug, segments in SEGMENTS.items():
        for code, first, _ in segments:  # subscribe() ends the running one the day before
            subscribe(tenant=tenants[slug], plan=plans[code], starts_on=PERIOD.replace(day=first))
    at = datetime(2026, 4, 1, tzinfo=UTC)
    send(*(usage_event(*row) for row in USAGE), now=at)
    rollup()
    refresh_drafts(today=date(2026, 3, 31))
    return tenants


def usage_event(tenant, meter, quantity, day) -> dict:
    return {"tenant": tenant, "meter": meter, "quantity": quantity,
            "at": datetime.combine(PERIOD.replace(day=day), time(12), tzinfo=UTC)}  # fmt: skip


# --- The independent computation ---------------------------------------------


@dataclass
class Expected:
    retail: dict = field(default_factory=lambda: defaultdict(Decimal))  # by meter / base_fee
    wholesale: dict = field(default_factory=lambda: defaultdict(Decimal))
    customers: dict = field(default_factory=dict)  # slug -> [retail, share]
    excluded: int = 0


def prorated(base_fee: str, first: int, last: int) -> Decimal:
    days = last - first + 1
    raw = Decimal(base_fee) if days == DAYS else Decimal(base_fee) * days / DAYS
    return raw.quantize(CENT, rounding=ROUND_HALF_UP)


def in_subtree(slug: str, root: str) -> bool:
    while slug is not None:
        if slug == root:
            return True
        slug = TREE[slug][1]
    return False


def used(customer: str, meter: str, start: date, end: date) -> Decimal:
    return sum(
        (Decimal(q) for t, m, q, day in USAGE
         if m == meter and in_subtree(t, customer) and start.day <= day <= end.day),
        Decimal(0),
    )  # fmt: skip


def seller_base_fee(statement, seller) -> Decimal:
    segments = SEGMENTS[statement.tenant.slug]
    fees = [prorated(PLANS[code][2], first, last) for code, first, last in segments]
    assert statement.base_fee == sum(fees)  # the statement is what the scenario says
    ours = [fee for (code, _, _), fee in zip(segments, fees, strict=True)
            if PLANS[code][0] == seller]  # fmt: skip
    return statement.base_fee if len(ours) == len(segments) else sum(ours, Decimal(0))


def expected_margin(seller: str | None) -> Expected:
    expected = Expected()
    statements = Statement.objects.filter(period=PERIOD).select_related("tenant")
    own = next((s for s in statements if seller and s.tenant.slug == seller), None)
    if own is not None:
        expected.wholesale["base_fee"] += own.base_fee
        for line in own.lines.all():
            expected.wholesale[line.meter.code] += line.amount
        assert sum(expected.wholesale.values()) == own.total
    currency = own.currency if own else "USD"
    for statement in statements:
        plans = {code for code, _, _ in SEGMENTS[statement.tenant.slug]}
        if statement == own or not any(PLANS[code][0] == seller for code in plans):
            continue
        if statement.currency != currency:
            expected.excluded += 1
            continue
        base = seller_base_fee(statement, seller)
        expected.retail["base_fee"] += base
        retail = base
        for line in statement.lines.all():
            if PLANS[line.plan_code][0] == seller:
                expected.retail[line.meter.code] += line.amount
                retail += line.amount
        expected.customers[statement.tenant.slug] = [retail, Decimal(0)]
    if own is not None and expected.customers:
        shares = chargeback(own, {slug: c[0] for slug, c in expected.customers.items()})
        for slug, share in shares.items():
            expected.customers[slug][1] = share
    return expected


def chargeback(own, retail: dict) -> dict:
    """Meter lines by usage over the line's days, the base fee by retail; largest remainder."""
    quotas = dict.fromkeys(retail, Fraction(0))
    by_retail = {slug: Fraction(max(r, 0)) for slug, r in retail.items()}
    for line in own.lines.all():
        by_usage = {s: Fraction(max(used(s, line.meter.code, line.starts_on, line.ends_on), 0))
                    for s in retail}  # fmt: skip
        weights = by_usage if any(by_usage.values()) else by_retail
        for slug, weight in weights.items():
            quotas[slug] += Fraction(line.amount) * weight / sum(weights.values())
    for slug, weight in by_retail.items():
        quotas[slug] += Fraction(own.base_fee) * weight / sum(by_retail.values())
    cents = {slug: floor(q * 100) for slug, q in quotas.items()}
    left = int(own.total * 100) - sum(cents.values())
    names = {t.slug: t.name for t in Tenant.objects.all()}
    for slug in sorted(quotas, key=lambda s: (-(quotas[s] * 100 - cents[s]), names[s], s))[:left]:
        cents[slug] += 1
    return {slug: Decimal(c) / 100 for slug, c in cents.items()}


def assert_matches(margin, expected: Expected) -> None:
    rows = {row.meter: row for row in margin.rows}
    assert set(rows) == set(expected.retail) | set(expected.wholesale)
    for code, row in rows.items():
        assert (row.retail, row.wholesale) == (expected.retail[code], expected.wholesale[code])
    assert margin.retail == sum(expected.retail.values())
    assert margin.wholesale == sum(expected.wholesale.values())
    got = {c.tenant.slug: [c.retail, c.wholesale_share] for c in margin.customers}
    assert got == expected.customers
    assert margin.customer_statements == len(expected.customers)
    assert margin.excluded_statements == expected.excluded
    if margin.customers and margin.wholesale:
        assert sum(c.wholesale_share for c in margin.customers) == margin.wholesale
        assert sum(c.margin for c in margin.customers) == margin.margin


# --- Each level ----------------------------------------------------------------


def test_platform_margin_is_its_plans_retail_with_no_wholesale(market):
    margin = seller_margin(None, PERIOD)
    assert_matches(margin, expected_margin(None))
    # north all month, r-two until it moved to north's plan, r-solo.
    assert [c.tenant.slug for c in margin.customers] == ["north", "r-solo", "r-two"]
    assert margin.wholesale == 0 and margin.margin == margin.retail


def test_partner_margin_counts_its_own_customers_only(market):
    margin = seller_margin(market["north"], PERIOD)
    assert_matches(margin, expected_margin("north"))
    # Its resellers' wholesale and o-c's second half — never the organizations' statements
    # on its resellers' plans (its customers' customers).
    assert {c.tenant.slug for c in margin.customers} == {"r-one", "r-two", "o-c"}
    by_slug = {c.tenant.slug: c for c in margin.customers}
    # Base fees: 300 a month; 16 of 31 days of 300 and of 120 after the change.
    assert by_slug["r-two"].retail - sum(
        line.amount
        for line in Statement.objects.get(tenant__slug="r-two").lines.all()
        if line.plan_code == "north-wholesale"
    ) == Decimal("154.84")
    assert margin.rows[0].meter == "base_fee"
    assert margin.rows[0].retail == Decimal("300") + Decimal("154.84") + Decimal("61.94")


def test_reseller_margin_counts_its_plans_segments_and_leaves_other_currencies_out(market):
    margin = seller_margin(market["r-one"], PERIOD)
    expected = expected_margin("r-one")
    assert_matches(margin, expected)
    assert [c.tenant.slug for c in margin.customers] == ["o-a", "o-b", "o-c"]
    assert margin.excluded_statements == 1  # o-eur, billed in EUR
    # o-c until the 15th: 15/31 of 100, and its one-basic line of the first half only.
    o_c = next(c for c in margin.customers if c.tenant.slug == "o-c")
    first_half = Statement.objects.get(tenant__slug="o-c").lines.get(plan_code="one-basic")
    assert (first_half.starts_on, first_half.ends_on) == (PERIOD, date(2026, 3, 15))
    assert o_c.retail == Decimal("48.39") + first_half.amount


def test_unbilled_usage_is_charged_back_to_the_customers(market):
    # o-free's usage is in r-two's wholesale; o-d, its only customer, carries all of it.
    margin = seller_margin(market["r-two"], PERIOD)
    assert_matches(margin, expected_margin("r-two"))
    [o_d] = margin.customers
    assert o_d.wholesale_share == margin.wholesale


def test_shares_round_to_the_minor_unit_and_add_up(market):
    for seller in (market["north"], market["r-one"], market["r-two"]):
        margin = seller_margin(seller, PERIOD)
        for customer in margin.customers:
            assert customer.wholesale_share == customer.wholesale_share.quantize(CENT)
        assert sum(c.wholesale_share for c in margin.customers) == margin.wholesale


# --- API, page and CSV ---------------------------------------------------------


@pytest.fixture
def people(market):
    return {
        "root": make_user("root", is_staff=True, is_superuser=True),
        "north": make_user("nora", market["north"], "viewer"),
        "r-one": make_user("ona", market["r-one"], "viewer"),
        "r-two": make_user("tom", market["r-two"], "manager"),
        "o-a": make_user("ada", market["o-a"], "admin"),
    }


def margin_api(api, user, query: str = ""):
    return api(user).get(f"/api/v1/margin/?period=2026-03{query}")


def download(client, url) -> list[dict]:
    response = client.get(url)
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


@pytest.mark.parametrize("seller", ["north", "r-one"])
def test_api_page_and_csv_show_the_same_numbers(market, people, api, client, seller):
    body = margin_api(api, people[seller], f"&tenant={seller}").json()
    expected = expected_margin(seller)
    assert body["tenant"] == seller
    assert {c["tenant"]: [Decimal(c["retail"]), Decimal(c["wholesale_share"])]
            for c in body["customers"]} == expected.customers  # fmt: skip
    for c in body["customers"]:
        assert Decimal(c["margin"]) == Decimal(c["retail"]) - Decimal(c["wholesale_share"])
    client.force_login(people[seller])
    page = client.get(f"/reports/t/{seller}/statements/?period=2026-03")
    html = page.content.decode()
    assert page.status_code == 200 and 'id="margin-customers-table"' in html
    base = f"/reports/t/{seller}/statements/csv/?period=2026-03&table="
    rows = download(client, base + "margin_customers")
    assert {r["Slug"]: (Decimal(r["Retail"]), Decimal(r["Wholesale share"]), Decimal(r["Margin"]))
            for r in rows} == {
        c["tenant"]: (Decimal(c["retail"]), Decimal(c["wholesale_share"]), Decimal(c["margin"]))
        for c in body["customers"]
    }  # fmt: skip
    meters = download(client, base + "margin")
    assert meters[-1]["Meter"] == "Total"
    assert Decimal(meters[-1]["Margin"]) == Decimal(body["margin"])
    for row in rows:  # each customer's numbers are on the page too
        assert row["Wholesale share"].replace(",", "") in html.replace(",", "")


def test_superuser_gets_the_platform_margin_without_a_tenant(market, people, api):
    body = margin_api(api, people["root"]).json()
    expected = expected_margin(None)
    assert body["tenant"] is None and Decimal(body["wholesale"]) == 0
    assert Decimal(body["retail"]) == sum(expected.retail.values())
    assert [c["tenant"] for c in body["customers"]] == ["north", "r-solo", "r-two"]


def test_who_may_ask_for_which_margin(market, people, api):
    def status(user, query=""):
        return margin_api(api, people[user], query).status_code

    assert status("r-one", "&tenant=r-two") == 404  # another reseller's
    assert status("r-one", "&tenant=north") == 404  # its partner's
    assert status("r-one", "&tenant=r-solo") == 404
    assert status("o-a", "&tenant=r-one") == 404  # a customer, its seller's
    assert status("north", "&tenant=r-one") == 200  # a partner sees its resellers'
    assert status("r-one") == 400  # only superusers ask for the platform's
    response = margin_api(api, people["r-one"], "&tenant=o-a")
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["field"] == "tenant"
    assert status("o-a", "&tenant=o-a") == 400
    assert status("root", "&tenant=ag-a") == 400


def test_reseller_margin_never_reaches_its_customers_customers(market, people, api):
    body = margin_api(api, people["r-one"], "&tenant=r-one").json()
    slugs = {c["tenant"] for c in body["customers"]}
    assert slugs == {"o-a", "o-b", "o-c"}
    assert not slugs & {"ag-a", "ag-b", "ag-c", "r-two", "o-d"}
    partner = margin_api(api, people["north"], "&tenant=north").json()
    assert {c["tenant"] for c in partner["customers"]} == {"r-one", "r-two", "o-c"}
    assert partner["customer_statements"] == 3


def test_organizations_page_has_no_margin(market, people, client):
    client.force_login(people["o-a"])
    html = client.get("/reports/t/o-a/statements/?period=2026-03").content.decode()
    assert 'id="margin"' not in html
    response = client.get("/reports/t/o-a/statements/csv/?period=2026-03&table=margin_customers")
    assert response.status_code == 404


def test_margin_csv_neutralises_formulas_and_keeps_negative_numbers(market, people, client):
    Tenant.objects.filter(slug="o-d").update(name='=HYPERLINK("x")')
    client.force_login(people["r-two"])
    response = client.get("/reports/t/r-two/statements/csv/?period=2026-03&table=margin_customers")
    [row] = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))[1:]
    assert row[:2] == ['\'=HYPERLINK("x")', "o-d"]
    assert Decimal(row[4]) < 0 and not row[4].startswith("'")  # a loss stays a number
