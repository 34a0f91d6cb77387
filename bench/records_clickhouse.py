"""Records API reads in ClickHouse against the events table's sort key: the first
page and a deep-cursor page of a tenant subtree's records, newest first, as the
table is, and with a projection ordered by (tenant_id, occurred_at) added; and
what that projection costs ingestion.

    python bench/records_clickhouse.py --store clickhouse [--events 10000000]
        [--repeat 10] [--batches 100] [--batch-size 1000] [--reuse]
        [--clickhouse-dir DIR]

Loads N events (bench/benchdata.py's formula) over the usage query bench's tree
(1 partner, 10 resellers, 500 organizations, 10,000 agents), then times pages of
`page_size` 100 for one organization's subtree and one reseller's: the first
page and the page after a cursor half way through the subtree's records. Each
page is read as the records API reads it (the store's own read: plain, checked
for sort keys stored twice, FINAL only then), and, for comparison, with FINAL
and without it. Then, with the projection added and
built for the stored events, the same pages again (EXPLAIN says which of the
two each reads, and how many granules). Ingestion: `--batches` inserts of
`--batch-size` events with the projection and as many without (the store's own
insert of a batch into ClickHouse; its ledger in the relational database is not
timed), in alternating blocks, into a month of their own months before the
loaded events, dropped afterwards. `--reuse` skips the load when ClickHouse
already holds exactly N bench events (dropping a projection a run left).
"""

import argparse
import random
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from statistics import median

from benchdata import (
    STORE_OPTIONS,
    build_tree,
    commit_batch,
    event_storage,
    fresh_database,
    load_events,
    machine,
    percentile,
)

from accounts.models import Tenant
from metering.clickhouse import EVENTS_TABLE, client, database, events_table
from metering.models import Meter
from metering.records import RecordQuery
from metering.stores import uses_clickhouse
from metering.stores.clickhouse import (
    ClickHouseEventStore,
    insert_events,
    open_batch,
    record_conditions,
)
from metering.stores.events import StoredEvent

TREE = {"resellers": 10, "orgs_per_reseller": 50, "agents_per_org": 20}
PAGE = 100
PROJECTION = "records_by_tenant"
# The records API's order (metering.stores.clickhouse.ClickHouseEventStore.records).
ORDER = "occurred_at DESC, batch DESC, tenant_id DESC, event_id DESC"
SELECT = (
    "SELECT event_id, tenant_id, meter_id, quantity, occurred_at, received_at, source, "
    "dimension, attributes, batch"
)


def page_sql(query: RecordQuery, final: bool) -> tuple[str, dict]:
    """The store's page query (with FINAL, as it reads), or the same without FINAL."""
    where, params = record_conditions(query)
    sql = (
        f"{SELECT} FROM {events_table()} {'FINAL' if final else ''} "
        f"WHERE {' AND '.join(where)} ORDER BY {ORDER} LIMIT {PAGE + 1}"
    )
    return sql, params


def read_page(query: RecordQuery, mode: str) -> float:
    """Milliseconds of one page: `store` through the store itself (what the API
    runs: a plain read checked for keys stored twice), `FINAL` or `no FINAL` the
    bare query."""
    started = time.perf_counter()
    if mode == "store":
        rows = ClickHouseEventStore().records(query, PAGE + 1)
    else:
        rows = client.rows(*page_sql(query, mode == "FINAL"))
    elapsed = (time.perf_counter() - started) * 1000
    assert len(rows) == PAGE + 1, len(rows)
    return elapsed


def plan_reads(query: RecordQuery, mode: str) -> str:
    """What EXPLAIN says the page reads: the table or the projection, and how many
    parts and granules (of 8,192 rows) of it."""
    sql, params = page_sql(query, mode == "FINAL")
    reads, source = [], "?"
    for (line,) in client.rows(f"EXPLAIN projections = 1, indexes = 1 {sql}", params):
        text = line.strip(" │└├─")
        if text.startswith("ReadFromMergeTree"):
            source = text.removeprefix("ReadFromMergeTree").strip(" ()")
        elif text.startswith("Parts:") and "| Granules:" in text:
            reads.append(f"{source.removeprefix(database() + '.')} ({text})")
    return ", ".join(reads)


def subtree_ids(slug: str) -> list[int]:
    tenant = Tenant.objects.get(slug=slug)
    return list(
        Tenant.objects.filter(
            tree_id=tenant.tree_id, lft__gte=tenant.lft, lft__lte=tenant.rght
        ).values_list("pk", flat=True)
    )


def scopes() -> list[tuple[str, RecordQuery, RecordQuery, int]]:
    """(name, first page's query, deep page's query, records in the subtree) of one
    organization and one reseller; the deep page's cursor is the key of the
    record half way through the subtree's records."""
    store = ClickHouseEventStore()
    found = []
    for name, slug in (("organization", "r0-o0"), ("reseller", "r0")):
        ids = subtree_ids(slug)
        first = RecordQuery(tenant_ids=ids)
        total = store.count_records(first)
        (middle,) = store.records(first, 1, offset=total // 2)
        found.append((f"{name} ({len(ids):,} tenants)", first,
                      RecordQuery(tenant_ids=ids, before=middle.key), total))  # fmt: skip
    return found


def time_pages(label: str, repeat: int, *, modes=("store", "FINAL", "no FINAL")) -> dict:
    """Every scope's first and deep page, FINAL and not, interleaved `repeat`
    times after a warm-up; prints and returns the medians."""
    print(f"{label}: {parts()} active parts", flush=True)
    pages = [
        (f"{scope}, {which}", query, mode)
        for scope, first, deep, _ in SCOPES
        for which, query in (("first page", first), ("deep page", deep))
        for mode in modes
    ]
    timings: dict[tuple, list[float]] = {(name, mode): [] for name, _, mode in pages}
    for _ in range(repeat + 1):  # the first round warms up
        for name, query, mode in pages:
            timings[(name, mode)].append(read_page(query, mode))
    medians = {}
    for name, query, mode in pages:
        values = timings[(name, mode)][1:]
        medians[(name, mode)] = median(values)
        print(
            f"    {name:<42} {mode:<8} median {median(values):8.1f} "
            f"ms, max {max(values):8.1f} ms; reads {plan_reads(query, mode)}",
            flush=True,
        )
    return medians


def parts() -> int:
    ((count,),) = client.rows(
        "SELECT count() FROM system.parts WHERE active AND database = {database:String} "
        "AND table = {table:String}",
        {"database": database(), "table": EVENTS_TABLE},
    )
    return count


def ingest(batches: int, size: int, agents: list[int], start: datetime, tag: str) -> list[float]:
    """Seconds of each of `batches` ClickHouse inserts of `size` events (a batch
    each, as the store writes them), in the 20 days from `start`."""
    rng = random.Random(f"{tag}-{size}")
    meters = list(Meter.objects.exclude(aggregation="unique_count").values_list("pk", flat=True))
    seconds = []
    for b in range(batches):
        rows = []
        for i in range(size):
            at = start + timedelta(seconds=rng.randrange(20 * 86400))
            rows.append(StoredEvent(
                f"ing-{tag}-{b}-{i}", rng.choice(agents), rng.choice(meters),
                Decimal(rng.randrange(1, 100000)) / 1000, at, at, "api", "", {}, 0,
            ))  # fmt: skip
        batch = open_batch()
        started = time.perf_counter()
        insert_events(rows, batch)
        seconds.append(time.perf_counter() - started)
        commit_batch(batch, len(rows))
    return seconds


def ingest_rounds(batches: int, size: int, agents: list[int], end: datetime) -> None:
    """`batches` inserts with the projection and as many without, in four
    alternating blocks (a neighbour's noise then falls on both), into a month of
    their own months before the loaded events, dropped afterwards."""
    start = (end - timedelta(days=120)).replace(day=1)
    block = max(1, batches // 4)
    seconds: dict[bool, list[float]] = {True: [], False: []}
    for n in range(0, batches, block):
        for projected in (True, False):
            if projected:
                add_projection(materialize=False)
            else:
                drop_projection()
            tag = f"{'p' if projected else 'n'}{n}"
            seconds[projected] += ingest(min(block, batches - n), size, agents, start, tag)
    drop_projection()
    client.command(f"ALTER TABLE {events_table()} DROP PARTITION ID '{start:%Y%m}'")
    for projected in (False, True):
        values = seconds[projected]
        print(
            f"ingest {'with' if projected else 'without'} the projection: {len(values)} batches "
            f"of {size:,} in {sum(values):.2f} s; per batch median {median(values) * 1000:.1f} "
            f"ms, p95 {percentile(values, 95) * 1000:.1f} ms",
            flush=True,
        )
    print(f"ingest with the projection / without: {sum(seconds[True]) / sum(seconds[False]):.2f}")


def add_projection(*, materialize: bool = True) -> float:
    """Seconds to add the projection (and build it for the stored events)."""
    table = events_table()
    started = time.monotonic()
    # A ReplacingMergeTree keeps a projection only if told what a merge does to it.
    client.command(
        f"ALTER TABLE {table} MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild'"
    )
    client.command(
        f"ALTER TABLE {table} ADD PROJECTION IF NOT EXISTS {PROJECTION} "
        "(SELECT * ORDER BY (tenant_id, occurred_at))"
    )
    if materialize:
        client.command(
            f"ALTER TABLE {table} MATERIALIZE PROJECTION {PROJECTION}",
            settings={"mutations_sync": 2},
        )
    return time.monotonic() - started


def drop_projection() -> None:
    client.command(
        f"ALTER TABLE {events_table()} DROP PROJECTION IF EXISTS {PROJECTION}",
        settings={"mutations_sync": 2},
    )


def loaded(events: int) -> bool:
    agents = TREE["resellers"] * TREE["orgs_per_reseller"] * TREE["agents_per_org"]
    if not Tenant.objects.filter(slug="bench-partner").exists():
        return False
    if Tenant.objects.filter(kind="agent").count() != agents:
        return False
    ((total, others),) = client.rows(
        f"SELECT count(), countIf(NOT startsWith(event_id, 'b-')) FROM {events_table()}"
    )
    return (total, others) == (events, 0)


SCOPES: list = []


def main():
    parser = argparse.ArgumentParser(parents=[STORE_OPTIONS])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--reuse", action="store_true")
    args = parser.parse_args()
    if not uses_clickhouse():
        parser.error("this benchmark reads ClickHouse: run it with --store clickhouse")
    print(f"machine: {machine()}", flush=True)
    started = time.monotonic()
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if args.reuse and loaded(args.events):
        drop_projection()
        print(f"events: {args.events:,} already loaded, reused", flush=True)
    else:
        fresh_database()
        agents = build_tree(**TREE)
        seconds = load_events(args.events, agents, end)
        print(f"events: {args.events:,} over {len(agents):,} agents loaded in {seconds:.1f} s",
              flush=True)  # fmt: skip
    agents = list(Tenant.objects.filter(kind="agent").order_by("pk").values_list("pk", flat=True))
    print(f"event storage: {event_storage()}", flush=True)
    SCOPES.extend(scopes())
    for scope, _, _, total in SCOPES:
        print(f"{scope}: {total:,} records; deep page's cursor after {total // 2:,}", flush=True)

    before = time_pages("sort key only (as the table is)", args.repeat)
    materialize = add_projection()
    print(f"projection added and built for the stored events in {materialize:.1f} s; "
          f"event storage: {event_storage()}", flush=True)  # fmt: skip
    after = time_pages("with the projection (tenant_id, occurred_at)", args.repeat)
    print("speed-up with the projection (median before / after):")
    for key, value in before.items():
        name, mode = key
        print(f"    {name:<42} {mode:<8} {value / after[key]:6.2f}x")
    ingest_rounds(args.batches, args.batch_size, agents, end)
    print(f"total benchmark time: {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
