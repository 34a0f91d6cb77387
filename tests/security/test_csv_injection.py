"""Every CSV download shows text that would start a spreadsheet formula as text (a
leading '), while numbers, negative ones included, stay numbers."""

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest
from django.utils import timezone

from accounts.models import PlatformPrincipal
from billing.models import Statement, StatementLine
from billing.periods import month_of
from metering.ingestion import ingest_events
from metering.models import Meter
from tests.factories import make_tenant
from utilities.csv import csv_cell

FORMULA = '=HYPERLINK("x")'
SUM = "-2+3"


@pytest.fixture
def hostile(world):
    """A tenant named like a formula, with an event id and a dimension value like one,
    and a negative correction of -19000."""
    tenant = make_tenant("agent", world.org_a, slug="evil", name=FORMULA)
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    ingest_events(
        [
            {"event_id": FORMULA, "tenant": "evil", "meter": "call_minutes", "quantity": "5",
             "timestamp": now, "attributes": {"direction": SUM}},
            {"event_id": "fix-1", "tenant": "evil", "meter": "call_minutes",
             "quantity": "-19000", "timestamp": now, "attributes": {"reason": "refund"}},
        ],
        principal=PlatformPrincipal(),
    )  # fmt: skip
    return tenant


@pytest.fixture
def hostile_statement(hostile):
    period = month_of(timezone.now().date())
    statement = Statement.objects.create(
        tenant=hostile, period=period, currency="USD", base_fee=D("0"),
        usage_amount=D("-19000"), total=D("-19000"), as_of=timezone.now(),
    )  # fmt: skip
    StatementLine.objects.create(
        statement=statement, meter=Meter.objects.get(code="call_minutes"), plan_code=SUM,
        starts_on=period, ends_on=period, used=D("-19000"), included=D("0"),
        overage=D("0"), amount=D("-19000"),
    )  # fmt: skip
    return period


def rows_of(response) -> list[list[str]]:
    assert response.status_code == 200, response.content
    text = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(text)))


def cells(rows) -> set[str]:
    return {cell for row in rows for cell in row}


def assert_neutralised(rows, *hostile_texts):
    found = cells(rows)
    for text in hostile_texts:
        assert "'" + text in found
        assert text not in found


def test_records_api_csv(users, api, hostile):
    rows = rows_of(api(users["superuser"]).get("/api/v1/events/?format=csv"))
    assert_neutralised(rows, FORMULA, SUM)
    assert "-19000.000000" in cells(rows)


def test_usage_api_csv(users, api, hostile):
    client = api(users["superuser"])
    rows = rows_of(client.get("/api/v1/usage/?tenant=org-a&group_by=dimension&format=csv"))
    assert_neutralised(rows, SUM)
    assert "-19000.000000" in cells(rows)
    rows = rows_of(client.get("/api/v1/usage/?tenant=org-a&group_by=child&format=csv"))
    assert_neutralised(rows, FORMULA)
    assert "-18995.000000" in cells(rows)


def test_statements_api_csv(users, api, hostile_statement):
    rows = rows_of(api(users["superuser"]).get("/api/v1/statements/?tenant=evil&format=csv"))
    assert_neutralised(rows, SUM)
    assert {"-19000.000", "-19000.000000"} <= cells(rows)


def test_report_page_csvs(users, login, hostile):
    client = login(users["superuser"])
    base = "/reports/t/org-a/csv/?category=communications&table="
    children = rows_of(client.get(base + "children"))
    assert_neutralised(children, FORMULA)
    assert "-18995.000000" in cells(children)
    chart = rows_of(client.get(base + "chart&stack=child"))
    assert "'" + FORMULA in chart[0]
    dimension = rows_of(client.get(base + "chart&stack=dimension"))
    assert "'" + SUM in dimension[0]


def test_records_page_csv(users, login, hostile):
    rows = rows_of(login(users["superuser"]).get("/reports/t/org-a/records/csv/"))
    assert_neutralised(rows, FORMULA, SUM)
    assert "-19000.000000" in cells(rows)


def test_statements_page_csv(users, login, hostile_statement):
    url = f"/reports/t/evil/statements/csv/?table=lines&period={hostile_statement:%Y-%m}"
    rows = rows_of(login(users["superuser"]).get(url))
    assert_neutralised(rows, SUM)
    assert "-19000.00" in cells(rows)


@pytest.mark.parametrize(
    "value, cell",
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("-19000.000000", "-19000.000000"),
        ("-0E-6", "-0E-6"),
        ("a=1", "a=1"),
        ("", ""),
        (D("-19000.000000"), D("-19000.000000")),
        (-3, -3),
        (None, None),
    ],
)
def test_csv_cell(value, cell):
    assert csv_cell(value) == cell
