from datetime import timedelta
from itertools import count

import pytest

from accounts.models import PlatformPrincipal
from billing.models import DailyUsage
from billing.usage.rollup import run_rollup
from metering.ingestion import ingest_events
from metering.models import Meter

SERIAL = count()


@pytest.fixture
def latest_meter(db):
    """The catalog has no `latest` meter; the rules must still hold for one."""
    return Meter.objects.create(
        code="queue_depth",
        name="Queue depth",
        category="communications",
        unit="count",
        aggregation="latest",
        group_by="queue",
    )


def billing_table() -> list[tuple]:
    """Every row of the tenant billing table, comparable between runs."""
    return sorted(
        DailyUsage.objects.values_list(
            "tenant__slug", "meter__code", "day", "dimension", "source", "quantity", "event_count"
        )
    )


def rollup(**kwargs):
    return run_rollup(grace=timedelta(0), **kwargs)


def send(*events, now=None):
    """Ingest events as the platform would; `at` becomes the timestamp."""
    payload = []
    for event in events:
        body = {k: v for k, v in event.items() if k != "at"}
        if "at" in event:
            body["timestamp"] = event["at"].isoformat()
        payload.append({"event_id": f"e-{next(SERIAL)}", **body})
    return ingest_events(payload, principal=PlatformPrincipal(), now=now)
