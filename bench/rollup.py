"""Rollup speed: a full rollup of N events against a bare GROUP BY over the same events.

    python bench/rollup.py [--events 2000000]

Target: the rollup takes at most 1.5x the bare query.
"""

import argparse
import time
from datetime import UTC, datetime, timedelta
from statistics import median

from benchdata import build_tree, fresh_database, load_events, machine
from django.db import connection

from billing.rollup import all_event_days, run_rollup

# The same grouping with the billing table's whole key (dimension and source too).
FULL_KEY_SQL = {
    "sqlite": "SELECT tenant_id, meter_id, date(occurred_at), dimension, source, SUM(quantity), "
    "COUNT(*) FROM metering_usageevent GROUP BY 1, 2, 3, 4, 5",
    "postgresql": "SELECT tenant_id, meter_id, (occurred_at AT TIME ZONE 'UTC')::date, "
    "dimension, source, SUM(quantity), COUNT(*) FROM metering_usageevent GROUP BY 1, 2, 3, 4, 5",
}
BARE_SQL = {
    "sqlite": "SELECT tenant_id, meter_id, date(occurred_at), SUM(quantity), COUNT(*) "
    "FROM metering_usageevent GROUP BY 1, 2, 3",
    "postgresql": "SELECT tenant_id, meter_id, (occurred_at AT TIME ZONE 'UTC')::date, "
    "SUM(quantity), COUNT(*) FROM metering_usageevent GROUP BY 1, 2, 3",
}


def bare_group_by(queries=BARE_SQL) -> tuple[float, int]:
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(queries[connection.vendor])
        rows = len(cursor.fetchall())
    return time.monotonic() - started, rows


def fmt(values: list[float]) -> str:
    return "/".join(f"{v:.2f}" for v in values)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    fresh_database()
    agents = build_tree(resellers=6, orgs_per_reseller=10, agents_per_org=10)
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    load_seconds = load_events(args.events, agents, end)
    print(f"machine: {machine()}")
    print(f"events: {args.events:,} over {len(agents)} agents, loaded in {load_seconds:.1f} s")
    _, groups = bare_group_by()  # warms the cache for both contenders
    days = all_event_days()
    bares, full_keys, rollups = [], [], []
    for _ in range(args.rounds):
        # Interleaved, so a noisy neighbour slows both alike; each rollup recomputes every day.
        bares.append(bare_group_by()[0])
        full_keys.append(bare_group_by(FULL_KEY_SQL)[0])
        run = run_rollup(days=days, grace=timedelta(0))
        rollups.append(run.duration_ms / 1000)
    bare, rollup = median(bares), median(rollups)
    print(f"bare GROUP BY tenant, meter, day: median {bare:.2f} s of {fmt(bares)} "
          f"({groups:,} groups)")  # fmt: skip
    print(
        f"full rollup: median {rollup:.2f} s of {fmt(rollups)} ({run.days_recomputed} days, "
        f"{run.rows_written:,} rows for every tenant and ancestor)"
    )
    full_key = median(full_keys)
    print(f"bare GROUP BY the table's whole key: median {full_key:.2f} s of {fmt(full_keys)}")
    print(f"ratio rollup / bare: {rollup / bare:.2f} (target <= 1.5); "
          f"rollup / whole-key GROUP BY: {rollup / full_key:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
