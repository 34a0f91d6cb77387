"""Rollup speed: a full rollup of N events against a bare GROUP BY over the same events.

    python bench/rollup.py [--events 2000000]

Target: the rollup takes at most 1.5x the bare query.
"""

import argparse
import time
from datetime import UTC, datetime, timedelta

from benchdata import build_tree, fresh_database, load_events, machine
from django.db import connection

from billing.rollup import all_event_days, run_rollup

BARE_SQL = {
    "sqlite": "SELECT tenant_id, meter_id, date(occurred_at), SUM(quantity), COUNT(*) "
    "FROM metering_usageevent GROUP BY 1, 2, 3",
    "postgresql": "SELECT tenant_id, meter_id, (occurred_at AT TIME ZONE 'UTC')::date, "
    "SUM(quantity), COUNT(*) FROM metering_usageevent GROUP BY 1, 2, 3",
}


def bare_group_by() -> tuple[float, int]:
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(BARE_SQL[connection.vendor])
        rows = len(cursor.fetchall())
    return time.monotonic() - started, rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2_000_000)
    args = parser.parse_args()
    fresh_database()
    agents = build_tree(resellers=6, orgs_per_reseller=10, agents_per_org=10)
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    load_seconds = load_events(args.events, agents, end)
    print(f"machine: {machine()}")
    print(f"events: {args.events:,} over {len(agents)} agents, loaded in {load_seconds:.1f} s")
    bare_first, groups = bare_group_by()  # warms the cache for both contenders
    bare, _ = bare_group_by()
    days = all_event_days()
    run = run_rollup(days=days, grace=timedelta(0))
    rollup = run.duration_ms / 1000
    print(f"bare GROUP BY tenant, meter, day: {bare:.2f} s ({groups:,} groups)")
    print(
        f"full rollup: {rollup:.2f} s ({run.days_recomputed} days, {run.rows_written:,} rows "
        f"for every tenant and ancestor)"
    )
    print(f"ratio rollup / bare: {rollup / bare:.2f} (target <= 1.5)")


if __name__ == "__main__":
    main()
