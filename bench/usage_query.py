"""Usage query speed: a partner-level 30-day summary over 10,000 agents, at two
event volumes, after a rollup.

    python bench/usage_query.py [--small 1000000] [--large 10000000] [--repeat 40]
        [--store orm|clickhouse] [--clickhouse-dir DIR]

Targets: p95 <= 100 ms, and p95 at the large volume <= 1.2x the small one (the
cost must not grow with raw events). Active users (a unique_count meter) are a
fixed set of daily logins per organization at both volumes.
"""

import argparse
import json
import time
from datetime import UTC, datetime, timedelta

from benchdata import (
    DAYS,
    STORE_OPTIONS,
    build_tree,
    event_storage,
    fresh_database,
    insert_events,
    load_events,
    machine,
    percentile,
)

from accounts.models import Tenant
from billing.usage import UsageFilters, usage_summary
from billing.usage.rollup import run_rollup
from billing.usage.runs import all_event_days
from metering.models import Meter

USERS_PER_ORG = 5


def load_active_users(end: datetime) -> int:
    meter = Meter.objects.get(code="active_users").pk
    orgs = list(Tenant.objects.filter(kind="organization").values_list("pk", flat=True))
    rows = []
    for day in range(DAYS):
        at = (end - timedelta(days=day, hours=10)).astimezone(UTC)
        for org in orgs:
            for user in range(USERS_PER_ORG):
                rows.append((f"au-{org}-{day}-{user}", org, meter, 1, at, at, "user", "",
                             json.dumps({"user_id": f"u{user}"})))  # fmt: skip
    insert_events(rows)
    return len(rows)


def time_summaries(partner, start, end, repeat: int, filters=None) -> list[float]:
    usage_summary(partner, start, end, "meter", filters)  # warm-up
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        usage_summary(partner, start, end, "meter", filters)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def measure(volume: int, loaded: int, agents, end, repeat) -> dict:
    load_seconds = load_events(volume - loaded, agents, end, start_at=loaded)
    storage = event_storage()
    started = time.monotonic()
    run_rollup(days=all_event_days(), grace=timedelta(0))
    rollup_seconds = time.monotonic() - started
    partner = Tenant.objects.get(slug="bench-partner")
    last, first = end.date() - timedelta(days=1), end.date() - timedelta(days=30)
    everything = time_summaries(partner, first, last, repeat)
    others = [m.code for m in Meter.objects.exclude(aggregation="unique_count")]
    without_unique = time_summaries(
        partner, first, last, repeat, UsageFilters(meters=tuple(others))
    )
    return {
        "events": volume,
        "added": volume - loaded,
        "load_s": load_seconds,
        "storage": storage,
        "rollup_s": rollup_seconds,
        "p50": percentile(everything, 50),
        "p95": percentile(everything, 95),
        "p95_without_unique": percentile(without_unique, 95),
    }


def main():
    parser = argparse.ArgumentParser(parents=[STORE_OPTIONS])
    parser.add_argument("--small", type=int, default=1_000_000)
    parser.add_argument("--large", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=40)
    args = parser.parse_args()
    fresh_database()
    agents = build_tree(resellers=10, orgs_per_reseller=50, agents_per_org=20)
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    logins = load_active_users(end)
    print(f"machine: {machine()}")
    print(f"tree: {Tenant.objects.count():,} tenants ({len(agents):,} agents); "
          f"{logins:,} active-user events at both volumes")  # fmt: skip
    results = []
    loaded = 0
    for volume in (args.small, args.large):
        result = measure(volume, loaded, agents, end, args.repeat)
        loaded = volume
        results.append(result)
        print(
            f"{volume:>12,} events: loaded in {result['load_s']:.1f} s "
            f"({result['added']:,} added; {result['storage']}); "
            f"rollup {result['rollup_s']:.1f} s; partner 30-day summary "
            f"p50 {result['p50']:.1f} ms, p95 {result['p95']:.1f} ms "
            f"(without unique_count meters: p95 {result['p95_without_unique']:.1f} ms)"
        )
    small, large = results
    print(f"p95 ratio large/small: {large['p95'] / small['p95']:.2f} (target <= 1.2); "
          f"without unique_count meters: "
          f"{large['p95_without_unique'] / small['p95_without_unique']:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
