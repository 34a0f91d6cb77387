"""Numbers people read: durations and sizes in a larger unit, fixed places per unit,
money with its currency; the exact value in the tooltip and the CSV."""

import csv
import io
from datetime import UTC, datetime, time
from decimal import Decimal as D
from html import unescape

import pytest
from django.utils import timezone
from django.utils.html import strip_tags

from accounts.models import PlatformPrincipal
from billing.money import format_money, money_text
from metering.ingestion import ingest_events
from metering.models import Meter
from reports.formatting import (
    LARGER_UNITS,
    PLACES,
    UNIT_NOTES,
    column_unit,
    display_unit,
    format_in,
)
from tests.reports.tables import html_table


def shown(value, unit: str) -> str:
    """A stored quantity as a card shows it: number and unit symbol."""
    display = display_unit(unit, value)
    return f"{format_in(value, display)} {display.symbol}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("152258886", "42.29 h"),
        ("3600000", "1.00 h"),
        ("3599999", "60.00 min"),  # rounds up in the unit it reads in, never a larger one
        ("90000", "1.50 min"),
        ("1523", "1.52 s"),
        ("999", "999 ms"),
        ("0", "0 ms"),
        ("-7200000", "-2.00 h"),  # a correction reads like the usage it corrects
    ],
)
def test_durations_read_in_hours_minutes_or_seconds(value, expected):
    assert shown(D(value), "ms") == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("243307165991", "243.31 GB"),
        ("1000000000000", "1.00 TB"),
        ("1500000", "1.50 MB"),
        ("1000", "1.00 KB"),  # decimal units: 1 KB is 1,000 bytes, not 1,024
        ("1023", "1.02 KB"),
        ("999", "999 bytes"),
    ],
)
def test_sizes_read_in_decimal_units(value, expected):
    assert shown(D(value), "bytes") == expected


def test_other_units_keep_their_unit_with_fixed_places():
    assert shown(D("6176.3"), "PU") == "6,176.30 PU"
    assert shown(D("6041.65"), "PU") == "6,041.65 PU"
    assert shown(D("16.25"), "minutes") == "16.25 minutes"
    assert shown(D("7"), "count") == "7 count"


def test_every_meter_unit_has_its_places_and_larger_units_are_largest_first():
    assert set(PLACES) == set(Meter.Unit.values)
    for unit, larger in LARGER_UNITS.items():
        factors = [factor for _, _, factor in larger]
        assert factors == sorted(factors, reverse=True), unit
    for unit in ("PU", "SU", "BU", "ms", "bytes"):
        assert UNIT_NOTES[unit]


def test_a_column_reads_in_one_unit_chosen_by_its_largest_value():
    unit = column_unit("ms", [D("152258886"), D("1500"), None])
    assert unit.symbol == "h"
    assert [format_in(v, unit) for v in ("152258886", "1500")] == ["42.29", "0.00"]
    assert column_unit("ms", []).symbol == "ms"


@pytest.mark.parametrize(
    ("currency", "amount", "expected"),
    [
        ("USD", "500.000", "500.00 USD"),
        ("USD", "1920.175", "1,920.18 USD"),  # half-up to the cent
        ("JPY", "1920.5", "1,921 JPY"),  # no minor unit
        ("KWD", "1920.1", "1,920.100 KWD"),  # three places
        ("USD", "-12.5", "-12.50 USD"),
    ],
)
def test_money_reads_in_its_currency_minor_units(currency, amount, expected):
    assert money_text(D(amount), currency) == expected
    assert format_money(D(amount), currency) == expected.rsplit(" ", 1)[0]


@pytest.fixture
def processing(world):
    """A large month of processing for org-a: hours of computation, gigabytes of input."""
    at = datetime.combine(timezone.now().date(), time(0, 0, 1), tzinfo=UTC)
    rows = [
        ("agent-a", "computation_ms", "152258886"),
        ("org-a", "computation_ms", "1500"),
        ("agent-a", "input_content_size_bytes", "243307165991"),
        ("agent-a", "processing_units", "6176.3"),
    ]
    ingest_events(
        [
            {"event_id": f"u{n}", "tenant": t, "meter": m, "quantity": q,
             "timestamp": at.isoformat(), "attributes": {"activity": "ocr"}}
            for n, (t, m, q) in enumerate(rows)
        ],
        principal=PlatformPrincipal(),
    )  # fmt: skip


def card_of(page: str, meter: str) -> str:
    card = page[page.index(f'data-meter="{meter}"') :]
    return card[: card.index("</article>")]


def csv_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_cards_read_in_hours_and_gigabytes_with_the_exact_value_as_tooltip(
    processing, users, login
):
    page = login(users["manager_a"]).get("/reports/t/org-a/").content.decode()
    computation = card_of(page, "computation_ms")
    assert "Computation time 42.29 h —" in " ".join(strip_tags(computation).split())
    assert ">42.29<" in computation
    assert 'title="152,260,386 ms"' in computation
    assert '<abbr class="unit" title="hours">h</abbr>' in computation
    size = card_of(page, "input_content_size_bytes")
    assert "243.31" in strip_tags(size) and 'title="243,307,165,991 bytes"' in size
    assert 'title="gigabytes (10⁹ bytes)">GB</abbr>' in size
    units = card_of(page, "processing_units")
    assert 'title="processing units">PU</abbr>' in units
    # Explained once: what PU means, and that sizes are decimal.
    assert unescape(page).count("Processing units: the platform's one measure") == 1
    assert "1 KB = 1,000 bytes" in page


def test_children_column_reads_in_one_unit_and_the_csv_stays_exact(processing, users, login):
    client = login(users["manager_a"])
    page = client.get("/reports/t/org-a/", {"meter": "computation_ms"}).content.decode()
    table = html_table(page, "children-table")
    assert table[0] == ["Child", "Kind", "Computation time (h)"]
    assert 'Computation time <span class="unit">(h)</span>' in page  # "h", even in capitals
    assert table[1:] == [["Agent A", "Agent", "42.29"], ["Org A (own usage)", "own usage", "0.00"]]
    assert 'title="1,500 ms">0.00<' in page
    download = csv_rows(
        client.get("/reports/t/org-a/csv/", {"meter": "computation_ms", "table": "children"})
    )
    assert download[0] == ["Child", "Kind", "Computation time (ms)"]
    assert [r[2] for r in download[1:]] == ["152258886.000000", "1500.000000"]


def test_quantities_in_a_column_have_the_units_places(processing, users, login):
    page = login(users["manager_a"]).get("/reports/t/reseller-a/").content.decode()
    table = html_table(page, "children-table")
    column = table[0].index("Processing units (PU)")
    assert table[1][column] == "6,176.30"


def test_chart_carries_its_display_unit_and_data_in_it(processing, users, login):
    client = login(users["manager_a"])
    params = {"category": "processing", "meter": "computation_ms"}
    chart = client.get("/reports/t/org-a/chart/", params).json()
    assert chart["unit"] == "ms"
    assert chart["display"] == {"symbol": "h", "name": "hours", "factor": "3600000", "places": 2}
    total = sum(sum(d["data"]) for d in chart["datasets"])
    assert round(total * 3600000) == 152260386
    page = client.get("/reports/t/org-a/", params).content.decode()
    assert "Numbers behind the chart (h)" in page
    numbers = html_table(page, "chart-numbers")
    assert numbers[0] == ["Day", "Agent A", "Org A (own usage)", "Total"]
    assert ["42.29", "0.00", "42.29"] in [row[1:] for row in numbers[1:]]
