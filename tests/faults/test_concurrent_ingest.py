"""Writers racing on the same event_ids: each event is stored once, and the answers'
accepted counts add up to exactly the events stored (duplicates are reported).
On PostgreSQL, writers taking the same ids in different orders used to deadlock."""

import random
import threading

import pytest
from django.db import connections

from accounts.models import PlatformPrincipal
from metering.ingestion import ingest_events
from metering.models import UsageEvent

ROUNDS, WRITERS, EVENTS = 5, 4, 300


def events(round_number):
    return [
        {"event_id": f"race-{round_number}-{n}", "tenant": "agent-a", "meter": "call_minutes",
         "quantity": "1.5"}
        for n in range(EVENTS)
    ]  # fmt: skip


def race(round_number):
    results, errors = [], []

    def writer(seed):
        mine = events(round_number)
        random.Random(seed).shuffle(mine)
        try:
            for start in range(0, len(mine), 50):
                batch = mine[start : start + 50]
                results.append(ingest_events(batch, principal=PlatformPrincipal()))
        except Exception as error:  # surfaced by the assertion below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=writer, args=(round_number * WRITERS + n,)) for n in range(WRITERS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors


@pytest.mark.django_db(transaction=True)
def test_racing_writers_store_each_event_once(world):
    for round_number in range(ROUNDS):
        results, errors = race(round_number)
        assert errors == []
        assert sum(r.accepted for r in results) == EVENTS
        assert sum(r.duplicates for r in results) == (WRITERS - 1) * EVENTS
        stored = UsageEvent.objects.filter(event_id__startswith=f"race-{round_number}-")
        assert stored.count() == EVENTS
