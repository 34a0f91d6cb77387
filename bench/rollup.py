"""Rollup speed: a full rollup of N events against a bare GROUP BY over the same events.

    python bench/rollup.py [--events 2000000] [--rounds 1] [--reuse]

Loads N events into the demo-shaped tree once, then each round times, over those
same events: the bare `GROUP BY tenant, meter, day`, the same GROUP BY with the
billing table's whole key, and a full rollup of every day (with its phases).
`--reuse` skips the load when the database already holds exactly N bench events.

Target: the rollup takes at most 1.5x the bare query.
"""

import argparse
import time
from datetime import UTC, datetime, timedelta
from statistics import median

from benchdata import build_tree, fresh_database, load_events, machine
from django.db import connection

from accounts.models import Tenant
from billing.models import DailyUsage
from billing.rollup import PhaseClock, all_event_days, run_rollup
from metering.models import UsageEvent

TREE = {"resellers": 6, "orgs_per_reseller": 10, "agents_per_org": 10}

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


def loaded(events: int) -> bool:
    """The database already holds this benchmark's tree and exactly `events` events."""
    agents = TREE["resellers"] * TREE["orgs_per_reseller"] * TREE["agents_per_org"]
    return (
        Tenant.objects.filter(slug="bench-partner").exists()
        and Tenant.objects.filter(kind="agent").count() == agents
        and UsageEvent.objects.count() == events
        and not UsageEvent.objects.exclude(event_id__startswith="b-").exists()
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--reuse", action="store_true", help="keep the events already loaded if they match"
    )
    args = parser.parse_args()
    print(f"machine: {machine()}", flush=True)
    started = time.monotonic()
    if args.reuse and loaded(args.events):
        print(f"events: {args.events:,} already loaded, reused", flush=True)
    else:
        fresh_database()
        agents = build_tree(**TREE)
        end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        load_seconds = load_events(args.events, agents, end)
        print(
            f"events: {args.events:,} over {len(agents)} agents, inserted and indexed in "
            f"{load_seconds:.1f} s ({time.monotonic() - started:.1f} s with the set-up)",
            flush=True,
        )
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA cache_size = -1000000")  # as the load leaves it: 1 GB
    tenants = Tenant.objects.count()
    warm, groups = bare_group_by()  # warms the cache for both contenders
    print(f"warm-up bare GROUP BY: {warm:.2f} s", flush=True)
    days = all_event_days()
    bares, full_keys, rollups = [], [], []
    for n in range(args.rounds):
        # Interleaved, so a noisy neighbour slows both alike; each rollup recomputes every day.
        bares.append(bare_group_by()[0])
        full_keys.append(bare_group_by(FULL_KEY_SQL)[0])
        phases = PhaseClock()
        existing = DailyUsage.objects.count()
        run = run_rollup(days=days, grace=timedelta(0), phases=phases)
        rollups.append(run.duration_ms / 1000)
        print(
            f"round {n + 1}: bare {bares[-1]:.2f} s, whole-key {full_keys[-1]:.2f} s, "
            f"rollup {rollups[-1]:.2f} s (ratio {rollups[-1] / bares[-1]:.2f}; "
            f"billing table held {existing:,} rows before)",
            flush=True,
        )
        inner = sum(v for k, v in phases.seconds.items() if k != "day transactions")
        for phase, seconds in phases.seconds.items():
            print(f"    {phase:<22} {seconds:7.2f} s")
        if "day transactions" in phases.seconds:
            rest = run.duration_ms / 1000 - inner
            print(f"    {'(locks, commits, other)':<22} {rest:7.2f} s", flush=True)
    bare, rollup = median(bares), median(rollups)
    print(f"bare GROUP BY tenant, meter, day: median {bare:.2f} s of {fmt(bares)} "
          f"({groups:,} groups)")  # fmt: skip
    print(
        f"full rollup: median {rollup:.2f} s of {fmt(rollups)} ({run.days_recomputed} days, "
        f"{run.rows_written:,} rows for {tenants} tenants and their ancestors)"
    )
    full_key = median(full_keys)
    print(f"bare GROUP BY the table's whole key: median {full_key:.2f} s of {fmt(full_keys)}")
    print(f"ratio rollup / bare: {rollup / bare:.2f} (target <= 1.5); "
          f"rollup / whole-key GROUP BY: {rollup / full_key:.2f}")  # fmt: skip
    print(f"total benchmark time: {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
