"""Rollup speed: a full rollup of N events against a bare GROUP BY over the same events.

    python bench/rollup.py [--events 2000000] [--rounds 1] [--increments 3] [--reuse]
        [--store orm|clickhouse] [--clickhouse-dir DIR]

Loads N events into the demo-shaped tree once, then each round times, over those
same events: the bare `GROUP BY tenant, meter, day`, the same GROUP BY with the
billing table's whole key, the floor (that GROUP BY written into an empty copy of
the billing table), and a full rollup of every day (with its phases). Then,
`--increments` times, it adds one new day and times the rollup that finds it
against the bare GROUP BY of that day's events and the day's own floor.
`--reuse` skips the load when the database already holds exactly N bench events;
`--rounds 0` then times the new days only. The phases of each (the full
rollups', and the new days' as a mean per day) are printed too.
With `--store clickhouse` the events, and so every GROUP BY of them, are in
ClickHouse; the floors read them there and write into the relational database.

Targets: a full rollup at most 2x the floor; the rollup of one new day at most
1.5x the bare GROUP BY of its events.
"""

import argparse
import time
from datetime import UTC, date, datetime, timedelta
from statistics import median

from benchdata import (
    STORE_OPTIONS,
    build_tree,
    commit_batch,
    event_storage,
    fresh_database,
    load_events,
    machine,
)
from django.db import connection, transaction

from accounts.models import Tenant
from billing.models import DailyUsage, RolledDay
from billing.periods import day_bounds
from billing.usage.clickhouse_reads import insert_rows, naive
from billing.usage.rollup import run_rollup
from billing.usage.runs import PhaseClock, all_event_days
from billing.usage.staging import WorkTables
from metering.clickhouse import client, events_table
from metering.models import EventBatch, UsageEvent
from metering.stores import uses_clickhouse
from metering.stores.clickhouse import open_batch

TREE = {"resellers": 6, "orgs_per_reseller": 10, "agents_per_org": 10}

# The same grouping with the billing table's whole key (dimension and source too).
FULL_KEY_SQL = {
    "sqlite": "SELECT tenant_id, meter_id, date(occurred_at), dimension, source, SUM(quantity), "
    "COUNT(*) FROM metering_usageevent GROUP BY 1, 2, 3, 4, 5",
    "postgresql": "SELECT tenant_id, meter_id, (occurred_at AT TIME ZONE 'UTC')::date, "
    "dimension, source, SUM(quantity), COUNT(*) FROM metering_usageevent GROUP BY 1, 2, 3, 4, 5",
    "clickhouse": "SELECT tenant_id, meter_id, toDate(occurred_at), dimension, source, "
    f"sum(quantity), count() FROM {events_table()} GROUP BY 1, 2, 3, 4, 5",
}
BARE_SQL = {
    "sqlite": "SELECT tenant_id, meter_id, date(occurred_at), SUM(quantity), COUNT(*) "
    "FROM metering_usageevent GROUP BY 1, 2, 3",
    "postgresql": "SELECT tenant_id, meter_id, (occurred_at AT TIME ZONE 'UTC')::date, "
    "SUM(quantity), COUNT(*) FROM metering_usageevent GROUP BY 1, 2, 3",
    "clickhouse": "SELECT tenant_id, meter_id, toDate(occurred_at), sum(quantity), count() "
    f"FROM {events_table()} GROUP BY 1, 2, 3",
}
# A day's events: the condition each of those queries gets for one day.
DAY_CONDITION = {
    "sqlite": "occurred_at >= %s AND occurred_at < %s",
    "postgresql": "occurred_at >= %s AND occurred_at < %s",
    "clickhouse": "occurred_at >= {start:DateTime64(6, 'UTC')} "
    "AND occurred_at < {end:DateTime64(6, 'UTC')}",
}


def events_engine() -> str:
    """What holds the events, and so runs every GROUP BY of them."""
    return "clickhouse" if uses_clickhouse() else connection.vendor


def day_params(day: date) -> list | dict:
    """DAY_CONDITION's parameters for the events engine."""
    start, end = day_bounds(day, day)
    if uses_clickhouse():
        return {"start": naive(start), "end": naive(end)}
    return [connection.ops.adapt_datetimefield_value(at) for at in (start, end)]


def read_events(sql: str, params: list | dict | None = None) -> list[tuple]:
    if uses_clickhouse():
        return client.rows(sql, params)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def day_query(sql: str) -> str:
    """`sql` (one of the GROUP BYs above) over one day's events."""
    return sql.replace(" GROUP BY", f" WHERE {DAY_CONDITION[events_engine()]} GROUP BY")


# The floor: the least work any rollup does. It must group the events by the
# billing table's whole key and write at least those rows (the member tenants'
# own; the rollup writes every ancestor's too) into a table with the billing
# table's key and indexes. A plain table in a transaction rolled back: a
# temporary one would skip the write-ahead log that the billing table pays for.
# Also timed into a table without any index: what no choice of keys can undercut.
FLOOR_COLUMNS = (
    "tenant_id bigint NOT NULL, meter_id bigint NOT NULL, day date NOT NULL, "
    "dimension varchar(256) NOT NULL, source varchar(8) NOT NULL, "
    "quantity decimal(28, 6) NOT NULL, event_count bigint NOT NULL"
)
FLOOR_KEYS = {
    "sqlite": "id integer PRIMARY KEY, {columns}, UNIQUE (tenant_id, day, meter_id, dimension, "
    "source)",
    "postgresql": "id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, {columns}, "
    "UNIQUE (tenant_id, day, meter_id, dimension, source)",
}
FLOOR_TARGET = "rollup_floor (tenant_id, meter_id, day, dimension, source, quantity, event_count)"


def floor_write(*, indexed: bool = True, day: date | None = None) -> float:
    """Seconds to write the whole-key GROUP BY into an empty copy of the billing
    table (`indexed`: with its keys and indexes), with the rollup's session settings;
    of one `day`'s events only, if given."""
    vendor = connection.vendor
    select, params = FULL_KEY_SQL[events_engine()], None
    if day is not None:
        select, params = day_query(select), day_params(day)
    with transaction.atomic(), connection.cursor() as cursor:
        if vendor == "postgresql":
            for name, value in WorkTables.SESSION_SETTINGS.items():
                cursor.execute(f"SET LOCAL {name} = '{value}'")
        table = FLOOR_KEYS[vendor] if indexed else "{columns}"
        cursor.execute(f"CREATE TABLE rollup_floor ({table.format(columns=FLOOR_COLUMNS)})")
        if indexed:
            cursor.execute("CREATE INDEX rollup_floor_day ON rollup_floor (day)")
        started = time.monotonic()
        if uses_clickhouse():
            # Read there, written here as the rollup stages what it reads from ClickHouse.
            insert_rows(FLOOR_TARGET, client.rows(select, params))
        else:
            cursor.execute(f"INSERT INTO {FLOOR_TARGET} {select}", params)
        seconds = time.monotonic() - started
        transaction.set_rollback(True)
    return seconds


def bare_group_by(queries=BARE_SQL) -> tuple[float, int]:
    started = time.monotonic()
    rows = len(read_events(queries[events_engine()]))
    return time.monotonic() - started, rows


SHIFTED = {
    "sqlite": "datetime(occurred_at, '+1 day')",
    "postgresql": "occurred_at + interval '1 day'",
}


def add_new_day() -> tuple[date, int]:
    """The last day's events again, one day later (new ids): a day no rollup has seen,
    as tomorrow's ingestion leaves it. Returns the day and its number of events."""
    last = max(all_event_days())
    if uses_clickhouse():
        return last + timedelta(days=1), copy_clickhouse_day(last)
    start, end = day_bounds(last, last)
    ops = connection.ops
    columns = "tenant_id, meter_id, quantity, received_at, source, dimension, attributes"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO metering_usageevent (event_id, occurred_at, {columns}) "
            f"SELECT 'inc-' || id, {SHIFTED[connection.vendor]}, {columns} "
            "FROM metering_usageevent WHERE occurred_at >= %s AND occurred_at < %s",
            [ops.adapt_datetimefield_value(start), ops.adapt_datetimefield_value(end)],
        )
        added = cursor.rowcount
    return last + timedelta(days=1), added


def copy_clickhouse_day(day: date) -> int:
    """add_new_day in ClickHouse: the copy is one committed batch of its own, as a
    day of ingestion would be many. Returns its number of events."""
    columns = "tenant_id, meter_id, quantity, received_at, source, dimension, attributes"
    batch = open_batch()
    client.command(
        f"INSERT INTO {events_table()} (event_id, occurred_at, {columns}, batch, position) "
        f"SELECT concat('inc-', event_id), occurred_at + INTERVAL 1 DAY, {columns}, "
        f"{{batch:UInt64}}, rowNumberInAllBlocks() FROM {events_table()} "
        f"WHERE {DAY_CONDITION['clickhouse']}",
        {**day_params(day), "batch": batch},
    )
    ((added,),) = client.rows(
        f"SELECT count() FROM {events_table()} WHERE batch = {{batch:UInt64}}", {"batch": batch}
    )
    commit_batch(batch, added)
    return added


def remove_new_day(day: date) -> None:
    """Delete add_new_day's events and the rollup's rows of their day."""
    if uses_clickhouse():
        # The day lies past every loaded one: all its events are the copy's.
        batches = [batch for (batch,) in read_events(
            f"SELECT DISTINCT batch FROM {events_table()} WHERE {DAY_CONDITION['clickhouse']}",
            day_params(day),
        )]  # fmt: skip
        client.command(
            f"ALTER TABLE {events_table()} DELETE WHERE has({{batches:Array(UInt64)}}, batch)",
            {"batches": batches},
            settings={"mutations_sync": 2},
        )
        EventBatch.objects.filter(pk__in=batches).delete()
    else:
        UsageEvent.objects.filter(event_id__startswith="inc-").delete()
    DailyUsage.objects.filter(day=day).delete()
    RolledDay.objects.filter(day=day).delete()


def day_group_by(day: date) -> float:
    started = time.monotonic()
    read_events(day_query(BARE_SQL[events_engine()]), day_params(day))
    return time.monotonic() - started


def incremental_round(phases: PhaseClock) -> tuple[float, float, float, int]:
    """(bare GROUP BY of the new day's events, the rollup of that day, the floor of
    that day, its events), the rollup's phases added into `phases`: the rollup a
    schedule runs after a day of ingestion,
    which finds the new day dirty by itself. The new day is removed afterwards, so
    --reuse finds the load, and on PostgreSQL vacuumed away: the next round's day
    would otherwise find the dead rows and index entries of this one's."""
    day, added = add_new_day()
    bare = day_group_by(day)
    floor = floor_write(day=day)
    run = run_rollup(grace=timedelta(0), phases=phases)
    assert run.days_recomputed == 1, run.days_recomputed
    remove_new_day(day)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM {UsageEvent._meta.db_table}, {DailyUsage._meta.db_table}")
    return bare, run.duration_ms / 1000, floor, added


def fmt(values: list[float]) -> str:
    return "/".join(f"{v:.2f}" for v in values)


def fmt3(values: list[float]) -> str:
    return "/".join(f"{v:.3f}" for v in values)


def loaded(events: int) -> bool:
    """The database already holds this benchmark's tree and exactly `events` events."""
    agents = TREE["resellers"] * TREE["orgs_per_reseller"] * TREE["agents_per_org"]
    return (
        Tenant.objects.filter(slug="bench-partner").exists()
        and Tenant.objects.filter(kind="agent").count() == agents
        and stored_events() == (events, 0)
    )


def stored_events() -> tuple[int, int]:
    """(events stored, those of them not from the load)."""
    if uses_clickhouse():
        ((total, others),) = client.rows(
            f"SELECT count(), countIf(NOT startsWith(event_id, 'b-')) FROM {events_table()}"
        )
        return total, others
    events = UsageEvent.objects
    return events.count(), events.exclude(event_id__startswith="b-").count()


def print_full_rollups(bares, full_keys, floors, bare_floors, rollups, run, groups, tenants):
    bare, rollup = median(bares), median(rollups)
    print(f"bare GROUP BY tenant, meter, day: median {bare:.2f} s of {fmt(bares)} "
          f"({groups:,} groups)")  # fmt: skip
    print(
        f"full rollup: median {rollup:.2f} s of {fmt(rollups)} ({run.days_recomputed} days, "
        f"{run.rows_written:,} rows for {tenants} tenants and their ancestors)"
    )
    full_key = median(full_keys)
    print(f"bare GROUP BY the table's whole key: median {full_key:.2f} s of {fmt(full_keys)}")
    floor = median(floors)
    print(f"floor (whole-key GROUP BY written to a copy of the billing table): median "
          f"{floor:.2f} s of {fmt(floors)}, {floor / bare:.2f}x the bare query")  # fmt: skip
    no_index = median(bare_floors)
    print(f"floor into a table without any index: median {no_index:.2f} s of "
          f"{fmt(bare_floors)}, {no_index / bare:.2f}x the bare query")  # fmt: skip
    print(f"ratio rollup / bare: {rollup / bare:.2f} (target <= 1.5); "
          f"rollup / whole-key GROUP BY: {rollup / full_key:.2f}")  # fmt: skip
    print(f"full rollup / floor: {rollup / floor:.2f} (target <= 2)")


def main():
    parser = argparse.ArgumentParser(parents=[STORE_OPTIONS])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--increments", type=int, default=3, help="rollups of one new day to time")
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
    print(f"event storage: {event_storage()}", flush=True)
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA cache_size = -1000000")  # as the load leaves it: 1 GB
    tenants = Tenant.objects.count()
    warm, groups = bare_group_by()  # warms the cache for both contenders
    print(f"warm-up bare GROUP BY: {warm:.2f} s", flush=True)
    days = all_event_days()
    bares, full_keys, floors, bare_floors, rollups = [], [], [], [], []
    for n in range(args.rounds):
        # Interleaved, so a noisy neighbour slows both alike; each rollup recomputes every day.
        bares.append(bare_group_by()[0])
        full_keys.append(bare_group_by(FULL_KEY_SQL)[0])
        floors.append(floor_write())
        bare_floors.append(floor_write(indexed=False))
        phases = PhaseClock()
        existing = DailyUsage.objects.count()
        run = run_rollup(days=days, grace=timedelta(0), phases=phases)
        rollups.append(run.duration_ms / 1000)
        print(
            f"round {n + 1}: bare {bares[-1]:.2f} s, whole-key {full_keys[-1]:.2f} s, "
            f"floor {floors[-1]:.2f} s (no index {bare_floors[-1]:.2f} s), "
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
    if rollups:  # --rounds 0 times the new days only
        print_full_rollups(bares, full_keys, floors, bare_floors, rollups, run, groups, tenants)
    day_phases = PhaseClock()
    increments = [incremental_round(day_phases) for _ in range(args.increments)]
    day_bare = median(i[0] for i in increments)
    day_rollup = median(i[1] for i in increments)
    day_floor = median(i[2] for i in increments)
    ratios = [i[1] / i[0] for i in increments]
    print(
        f"incremental: one new day of {increments[0][3]:,} events; its bare GROUP BY "
        f"median {day_bare:.3f} s of {fmt3([i[0] for i in increments])}, the rollup of it "
        f"median {day_rollup:.3f} s of {fmt3([i[1] for i in increments])}; ratio "
        f"{day_rollup / day_bare:.2f} (target <= 1.5; per round median {median(ratios):.2f} "
        f"of {fmt(ratios)})"
    )
    for phase, seconds in day_phases.seconds.items():
        print(f"    {phase:<22} {seconds / max(args.increments, 1):7.3f} s per day (mean)")
    print(
        f"floor of the day (its whole-key GROUP BY written to a copy of the billing table): "
        f"median {day_floor:.3f} s of {fmt3([i[2] for i in increments])}, "
        f"{day_floor / day_bare:.2f}x the bare query"
    )
    print(f"total benchmark time: {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
