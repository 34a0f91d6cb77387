"""Shared set-up for the benchmarks: a scratch database, a tenant tree, and events
generated in SQL from a fixed formula (the same rows on every run).

Run a benchmark with `DATABASE_URL` pointing at a scratch database (default: a
SQLite file under /tmp). It is flushed and reloaded: never point it at real data.
With `--store clickhouse` the events go to an embedded ClickHouse in
`--clickhouse-dir` (emptied too) and everything else stays in that database.
"""

import argparse
import io
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Every benchmark's event store options (its parser takes them as a parent).
STORE_OPTIONS = argparse.ArgumentParser(add_help=False)
STORE_OPTIONS.add_argument(
    "--store",
    choices=["orm", "clickhouse"],
    default="orm",
    help="where the events are kept: the relational event table, or ClickHouse",
)
STORE_OPTIONS.add_argument(
    "--clickhouse-dir",
    default="/tmp/usage-portal-bench-ch",
    help="the embedded ClickHouse's data directory (--store clickhouse; emptied)",
)


def configure_store(argv: list[str]) -> None:
    """The event store from the command line into the settings' environment: the
    settings are read once, by django.setup() below, before the script parses
    its own options."""
    options, _ = STORE_OPTIONS.parse_known_args(argv)
    os.environ["USAGE_EVENT_STORE"] = options.store
    if options.store == "clickhouse":
        os.environ["CLICKHOUSE_URL"] = f"chdb://{Path(options.clickhouse_dir).resolve()}"


configure_store(sys.argv[1:])
os.environ.setdefault("DATABASE_URL", "sqlite:////tmp/usage-portal-bench.sqlite3")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "usage_portal.settings")
os.environ.setdefault("DJANGO_LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from accounts.models import Tenant  # noqa: E402
from metering.clickhouse import EVENTS_TABLE, client, database, events_table  # noqa: E402
from metering.models import EventBatch, Meter, UsageEvent  # noqa: E402
from metering.stores import uses_clickhouse  # noqa: E402
from metering.stores.clickhouse import open_batch  # noqa: E402

DAYS = 45
# Meters the generator spreads events over, with relative weights and dimension values.
MIX = [
    ("call_minutes", 30, ["inbound", "outbound"]),
    ("chat_sessions", 20, ["web", "sms", "whatsapp"]),
    ("emails", 15, ["inbound", "outbound"]),
    ("processing_units", 20, ["transcription", "ocr", "summarization", "transcoding"]),
    ("bandwidth_units", 10, ["egress", "ingress"]),
    ("storage_units", 5, ["hot", "cool", "archive"]),
]


def machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    described = f"{os.cpu_count()} cores, {cpu}, {connection.vendor} {database_version()}"
    if uses_clickhouse():
        ((version,),) = client.rows("SELECT version()")
        described += f", events in ClickHouse {version} (embedded, chdb)"
    return described


def database_version() -> str:
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("select sqlite_version()")
        else:
            cursor.execute("show server_version")
        return cursor.fetchone()[0]


def fresh_database() -> None:
    call_command("migrate", verbosity=0)
    call_command("flush", interactive=False, verbosity=0)
    # flush empties the catalog too; the data migration's rows come back here.
    from metering.catalog import catalog_rows

    for row in catalog_rows():
        code = row.pop("code")
        Meter.objects.update_or_create(code=code, defaults=row)
    if uses_clickhouse():
        call_command("ch_migrate", stdout=io.StringIO())
        client.command(f"TRUNCATE TABLE {events_table()}")


def build_tree(resellers: int, orgs_per_reseller: int, agents_per_org: int) -> list[int]:
    """One partner over N resellers; returns the agent ids."""
    with transaction.atomic(), Tenant.objects.delay_mptt_updates():
        partner = Tenant.objects.create(name="Bench Partner", slug="bench-partner", kind="partner")
        for r in range(resellers):
            reseller = Tenant.objects.create(
                name=f"Reseller {r}", slug=f"r{r}", kind="reseller", parent=partner
            )
            for o in range(orgs_per_reseller):
                org = Tenant.objects.create(
                    name=f"Org {r}-{o}", slug=f"r{r}-o{o}", kind="organization", parent=reseller
                )
                Tenant.objects.bulk_create(
                    Tenant(
                        name=f"Agent {r}-{o}-{a}", slug=f"r{r}-o{o}-a{a}", kind="agent",
                        parent=org, tree_id=0, lft=0, rght=0, level=0,
                    )
                    for a in range(agents_per_org)
                )  # fmt: skip
    Tenant.objects.rebuild()
    return list(Tenant.objects.filter(kind="agent").order_by("id").values_list("id", flat=True))


def meter_slots() -> list[tuple[int, str, int]]:
    """(meter id, its dimension values joined by '|', their number), each meter
    repeated as often as its weight in MIX: event i takes slot (i * 40503) mod slots."""
    meters = dict(Meter.objects.values_list("code", "id"))
    slots = []
    for code, weight, dims in MIX:
        slots += [(meters[code], "|".join(dims), len(dims))] * weight
    return slots


def load_events(count: int, agent_ids: list[int], end: datetime, start_at: int = 0) -> float:
    """Insert `count` events numbered from `start_at` in one SQL statement; returns seconds.

    Row i gets its agent, meter, dimension, quantity and time from fixed hashes
    of i, so the same count always gives the same rows, in either store.
    """
    if uses_clickhouse():
        return load_clickhouse_events(count, agent_ids, end, start_at)
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_agent")
        cursor.execute("DROP TABLE IF EXISTS bench_meter")
        cursor.execute("CREATE TABLE bench_agent (idx integer primary key, tenant_id bigint)")
        cursor.executemany("INSERT INTO bench_agent VALUES (%s, %s)", list(enumerate(agent_ids)))
        cursor.execute(
            "CREATE TABLE bench_meter (idx integer primary key, meter_id bigint, dims text, "
            "ndims integer)"
        )
        slots = meter_slots()
        cursor.executemany(
            "INSERT INTO bench_meter VALUES (%s, %s, %s, %s)",
            [(i, *slot) for i, slot in enumerate(slots)],
        )
        started = time.monotonic()
        # A bulk load: secondary indexes are dropped and rebuilt afterwards (one sort
        # each instead of millions of random inserts), with a large page cache.
        indexes = secondary_indexes(cursor)
        for name, _ in indexes:
            cursor.execute(f"DROP INDEX {name}")
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA cache_size = -1000000")
        cursor.execute(
            insert_sql(), insert_params(count, len(agent_ids), len(slots), end, start_at)
        )
        for _, create in indexes:
            cursor.execute(create)
        elapsed = time.monotonic() - started
        cursor.execute("DROP TABLE bench_agent")
        cursor.execute("DROP TABLE bench_meter")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    else:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return elapsed


# Events per batch of a ClickHouse load: each batch is one step of the rollup's
# watermark there, as an ingested batch is.
CLICKHOUSE_BATCH = 1_000_000


def load_clickhouse_events(count: int, agent_ids: list[int], end: datetime, start_at: int) -> float:
    """insert_sql's rows, generated inside ClickHouse from the same formula, in
    committed batches of CLICKHOUSE_BATCH events; returns seconds.

    The idempotency ledger (EventKey) stays empty: nothing here ingests, and
    no timed read looks at it."""
    slots = meter_slots()
    params = {
        "agents": agent_ids,
        "meters": [meter for meter, _, _ in slots],
        "dims": [dims.split("|") for _, dims, _ in slots],
        "span": DAYS * 86400 - 1,
        "base": (end - timedelta(days=DAYS)).astimezone(UTC).replace(tzinfo=None),
    }
    started = time.monotonic()
    last = start_at + count
    for first in range(start_at + 1, last + 1, CLICKHOUSE_BATCH):
        events = min(CLICKHOUSE_BATCH, last + 1 - first)
        batch = open_batch()
        client.command(
            clickhouse_insert_sql(), {**params, "first": first, "count": events, "batch": batch}
        )
        commit_batch(batch, events)
    return time.monotonic() - started


def clickhouse_insert_sql() -> str:
    """insert_sql's formula in ClickHouse, over the numbers first … first + count - 1."""
    return f"""
    INSERT INTO {events_table()} (tenant_id, event_id, meter_id, quantity, occurred_at,
        received_at, source, dimension, attributes, batch, position)
    WITH {{agents:Array(UInt64)}} AS agents, {{meters:Array(UInt64)}} AS meters,
        {{dims:Array(Array(String))}} AS dims, i * 40503 % length(meters) + 1 AS slot,
        addSeconds({{base:DateTime64(6, 'UTC')}}, i * 104729 % {{span:UInt32}}) AS at
    SELECT agents[i * 2654435761 % length(agents) + 1], concat('b-', toString(i)),
        meters[slot], toDecimal64(i * 7919 % 100000, 6) / 1000, at, at,
        ['api', 'user', 'service'][i % 3 + 1], dims[slot][intDiv(i, 7) % length(dims[slot]) + 1],
        '{{}}', {{batch:UInt64}}, i - {{first:UInt64}}
    FROM (SELECT number AS i FROM numbers({{first:UInt64}}, {{count:UInt64}}))
    """


def commit_batch(batch: int, events: int) -> None:
    """Commit a batch whose events were written straight into ClickHouse, as the
    store commits an ingested one: the watermark then covers them."""
    EventBatch.objects.filter(pk=batch).update(state=EventBatch.State.COMMITTED, events=events)


EVENT_COLUMNS = [
    "event_id", "tenant_id", "meter_id", "quantity", "occurred_at", "received_at", "source",
    "dimension", "attributes",
]  # fmt: skip


def insert_events(rows: list[tuple]) -> None:
    """Rows of EVENT_COLUMNS (aware datetimes, attributes as JSON text) straight
    into the store's table; in ClickHouse as one committed batch."""
    if uses_clickhouse():
        batch = open_batch()
        client.insert(
            events_table(),
            [[*row, batch, position] for position, row in enumerate(rows)],
            [*EVENT_COLUMNS, "batch", "position"],
        )
        commit_batch(batch, len(rows))
        return
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {UsageEvent._meta.db_table} ({', '.join(EVENT_COLUMNS)}) "
            f"VALUES ({', '.join(['%s'] * len(EVENT_COLUMNS))})",
            [(*row[:4], adapt(row[4]), adapt(row[5]), *row[6:]) for row in rows],
        )


def event_storage() -> str:
    """The stored events' size on disk (with the table's indexes), to compare stores."""
    if uses_clickhouse():
        ((size, raw, parts),) = client.rows(
            "SELECT sum(bytes_on_disk), sum(data_uncompressed_bytes), count() FROM system.parts "
            "WHERE active AND database = {database:String} AND table = {table:String}",
            {"database": database(), "table": EVENTS_TABLE},
        )
        return (
            f"ClickHouse events table {mib(size)} on disk ({mib(raw)} uncompressed), "
            f"{parts} active parts"
        )
    table = UsageEvent._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                "SELECT SUM(pgsize) FROM dbstat WHERE name IN "
                "(SELECT name FROM sqlite_master WHERE tbl_name = %s)",
                [table],
            )
        else:
            cursor.execute("SELECT pg_total_relation_size(%s)", [table])
        size = cursor.fetchone()[0]
    return f"{connection.vendor} event table with its indexes {mib(size)}"


def mib(size: int) -> str:
    return f"{size / 2**20:,.1f} MiB"


def secondary_indexes(cursor) -> list[tuple[str, str]]:
    """(name, CREATE statement) of the event table's non-unique indexes."""
    if connection.vendor == "sqlite":
        cursor.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' "
            "AND tbl_name = 'metering_usageevent' AND sql IS NOT NULL "
            "AND sql NOT LIKE '%UNIQUE%'"
        )
    else:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'metering_usageevent' "
            "AND indexdef NOT LIKE '%UNIQUE%' AND indexname NOT LIKE '%pkey'"
        )
    return list(cursor.fetchall())


def insert_params(count, agents, slots, end, start_at):
    base = end - timedelta(days=DAYS)
    return {
        "first": start_at + 1,
        "last": start_at + count,
        "agents": agents,
        "slots": slots,
        "span": DAYS * 86400 - 1,
        "base": base.replace(tzinfo=None).isoformat(sep=" ") if connection.vendor == "sqlite"
        else base.astimezone(UTC),
    }  # fmt: skip


def insert_sql() -> str:
    columns = (
        "event_id, tenant_id, meter_id, quantity, occurred_at, received_at, source, "
        "dimension, attributes"
    )
    if connection.vendor == "postgresql":
        return f"""
        INSERT INTO metering_usageevent ({columns})
        SELECT 'b-' || g.i, a.tenant_id, m.meter_id,
               ((g.i * 7919) %% 100000) / 1000.0,
               %(base)s::timestamptz + make_interval(secs => (g.i * 104729) %% %(span)s),
               %(base)s::timestamptz + make_interval(secs => (g.i * 104729) %% %(span)s),
               (ARRAY['api', 'user', 'service'])[1 + (g.i %% 3)],
               split_part(m.dims, '|', 1 + ((g.i / 7) %% m.ndims)::int),
               '{{}}'::jsonb
        FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g(i)
        JOIN bench_agent a ON a.idx = (g.i * 2654435761) %% %(agents)s
        JOIN bench_meter m ON m.idx = (g.i * 40503) %% %(slots)s
        """
    return f"""
    WITH RECURSIVE g(i) AS (SELECT %(first)s UNION ALL SELECT i + 1 FROM g WHERE i < %(last)s)
    INSERT INTO metering_usageevent ({columns})
    SELECT 'b-' || g.i, a.tenant_id, m.meter_id,
           ((g.i * 7919) %% 100000) / 1000.0,
           datetime(%(base)s, '+' || ((g.i * 104729) %% %(span)s) || ' seconds'),
           datetime(%(base)s, '+' || ((g.i * 104729) %% %(span)s) || ' seconds'),
           CASE g.i %% 3 WHEN 0 THEN 'api' WHEN 1 THEN 'user' ELSE 'service' END,
           {sqlite_dimension()},
           '{{}}'
    FROM g
    JOIN bench_agent a ON a.idx = (g.i * 2654435761) %% %(agents)s
    JOIN bench_meter m ON m.idx = (g.i * 40503) %% %(slots)s
    """


def sqlite_dimension() -> str:
    """The ((i / 7) mod ndims)-th '|'-separated value of m.dims, in SQLite."""
    pick = "((g.i / 7) % m.ndims)"
    first = "substr(m.dims, 1, instr(m.dims || '|', '|') - 1)"
    rest1 = "substr(m.dims, instr(m.dims, '|') + 1)"
    second = f"substr({rest1}, 1, instr({rest1} || '|', '|') - 1)"
    rest2 = f"substr({rest1}, instr({rest1}, '|') + 1)"
    third = f"substr({rest2}, 1, instr({rest2} || '|', '|') - 1)"
    rest3 = f"substr({rest2}, instr({rest2}, '|') + 1)"
    fourth = f"substr({rest3}, 1, instr({rest3} || '|', '|') - 1)"
    return (
        f"CASE {pick} WHEN 0 THEN {first} WHEN 1 THEN {second} "
        f"WHEN 2 THEN {third} ELSE {fourth} END"
    ).replace("%", "%%")


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]
