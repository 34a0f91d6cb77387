from datetime import UTC, datetime, time, timedelta

import pytest
from django.utils import timezone

from accounts.models import PlatformPrincipal
from metering.ingestion import ingest_events
from reports.periods import THIS_MONTH, preset_period


def event(n, tenant, meter, quantity, at, **attributes):
    return {
        "event_id": f"r{n}",
        "tenant": tenant,
        "meter": meter,
        "quantity": quantity,
        "timestamp": at.isoformat(),
        "attributes": attributes,
    }


@pytest.fixture
def report_usage(world):
    """Usage this month (first thing today, UTC) and in the period before, for both resellers."""
    today = timezone.now().date()
    now = datetime.combine(today, time(0, 0, 1), tzinfo=UTC)
    before = datetime.combine(
        preset_period(THIS_MONTH, today).start - timedelta(days=1), time(12), tzinfo=UTC
    )
    rows = [
        ("agent-a", "call_minutes", "12.5", now, {"direction": "inbound"}),
        ("agent-a", "call_minutes", "2.25", now, {"direction": "outbound"}),
        ("agent-a", "call_minutes", "10", before, {"direction": "inbound"}),
        ("agent-a", "emails", "3", now, {"direction": "outbound"}),
        ("org-a", "call_minutes", "1.5", now, {"direction": "inbound"}),
        ("org-a", "licenses", "7", now, {"license_type": "viewer"}),
        ("agent-a", "processing_units", "1234.5", now, {"activity": "transcription"}),
        ("agent-b", "call_minutes", "99", now, {"direction": "inbound"}),
        ("agent-b", "call_minutes", "50", before, {"direction": "inbound"}),
    ]
    ingest_events(
        [event(n, *row[:4], **row[4]) for n, row in enumerate(rows)],
        principal=PlatformPrincipal(),
    )
    return today
