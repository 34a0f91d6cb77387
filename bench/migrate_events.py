"""What the upgrade to per-tenant event ids costs on a large event table.

Loads N events (fixed formula, see benchdata), rolls them up, steps the two
migrations back, then times them forward: `metering 0004` (event_id unique per
tenant) and `billing 0007` (wider billing-table sums, tenant failures). While
`metering 0004` runs, a writer thread keeps ingesting 100-event batches through
the ingestion service and records how long each took: on PostgreSQL the index is
built concurrently, so ingestion should not stop.

    DATABASE_URL=postgres://… python bench/migrate_events.py --events 1000000
"""

import argparse
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from benchdata import build_tree, database_version, fresh_database, load_events, machine
from django.core.management import call_command
from django.db import connection, connections

from billing.usage.rollup import run_rollup
from metering.ingestion import store_events
from metering.models import Meter, UsageEvent


def timed_migrate(app: str, target: str) -> float:
    started = time.monotonic()
    call_command("migrate", app, target, verbosity=0)
    return time.monotonic() - started


class Writer(threading.Thread):
    """Ingests 100-event batches until stopped; keeps each batch's latency."""

    def __init__(self, tenant_id: int, meter: Meter):
        super().__init__(daemon=True)
        self.tenant_id, self.meter = tenant_id, meter
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.stop = threading.Event()

    def run(self):
        n = 0
        try:
            while not self.stop.is_set():
                now = datetime.now(UTC)
                rows = [
                    UsageEvent(
                        event_id=f"live-{n}-{i}", tenant_id=self.tenant_id, meter=self.meter,
                        quantity=Decimal(1), occurred_at=now, received_at=now,
                    )
                    for i in range(100)
                ]  # fmt: skip
                started = time.monotonic()
                try:
                    store_events(rows)
                except Exception as error:  # reported, not hidden
                    self.errors.append(repr(error))
                self.latencies.append(time.monotonic() - started)
                n += 1
                time.sleep(0.05)
        finally:
            connections.close_all()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    print(f"{machine()}; {connection.vendor} {database_version()}; {args.events:,} events")
    fresh_database()
    agents = build_tree(10, 10, 10)
    load_events(args.events, agents, datetime.now(UTC) - timedelta(hours=1))
    run_rollup(grace=timedelta(0))
    print(f"back to metering 0003: {timed_migrate('metering', '0003'):.1f} s")
    print(f"back to billing 0006: {timed_migrate('billing', '0006'):.1f} s")

    writer = Writer(agents[0], Meter.objects.get(code="call_minutes"))
    writer.start()
    time.sleep(1)
    forward = timed_migrate("metering", "0004")
    time.sleep(1)
    writer.stop.set()
    writer.join()
    latencies = sorted(writer.latencies)
    print(f"metering 0004 forward: {forward:.1f} s")
    print(
        f"  ingestion meanwhile: {len(latencies)} batches of 100, "
        f"median {latencies[len(latencies) // 2] * 1000:.0f} ms, "
        f"max {latencies[-1] * 1000:.0f} ms, errors {len(writer.errors)}"
        + (f" (first: {writer.errors[0]})" if writer.errors else "")
    )
    print(f"billing 0007 forward: {timed_migrate('billing', '0007'):.1f} s")


if __name__ == "__main__":
    main()
