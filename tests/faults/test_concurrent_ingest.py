"""Writers racing on the same event_ids: each event is stored once, and the answers'
accepted counts add up to exactly the events stored (duplicates are reported)."""

import random
import threading

import pytest
from django.db import connections

from accounts.models import PlatformPrincipal
from metering.ingestion import ingest_events
from metering.models import UsageEvent

EVENTS = [
    {"event_id": f"race-{n}", "tenant": "agent-a", "meter": "call_minutes", "quantity": "1.5"}
    for n in range(300)
]


@pytest.mark.django_db(transaction=True)
def test_racing_writers_store_each_event_once(world):
    results, errors = [], []

    def writer(seed):
        events = list(EVENTS)
        random.Random(seed).shuffle(events)
        try:
            for start in range(0, len(events), 50):
                results.append(
                    ingest_events(events[start : start + 50], principal=PlatformPrincipal())
                )
        except Exception as error:  # surfaced by the assertion below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(r.accepted for r in results) == len(EVENTS)
    assert sum(r.duplicates for r in results) == 3 * len(EVENTS)
    assert UsageEvent.objects.filter(event_id__startswith="race-").count() == len(EVENTS)
