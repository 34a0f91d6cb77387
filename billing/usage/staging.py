"""The rollup's work tables, built once per run before the first day is written."""

from datetime import date

from django.db import connection
from django.db.models import Max, Min

from accounts.services import tree_write_lock
from billing.periods import day_bounds
from billing.usage import clickhouse_reads
from billing.usage.day_values import member_values_sql
from billing.usage.runs import PhaseClock
from billing.usage.values import as_date
from metering.models import UsageEvent
from metering.stores import uses_clickhouse

# The billing table's key, day first.
TOTALS_KEY = "day, tenant_id, meter_id, dimension, source"


class WorkTables:
    """Work tables for one run, built before the first day is written:

    - member values of every day to do, read in one pass over the events;
    - each tenant's ancestors (equality joins, not lft/rght ranges);
    - the subtree totals of every tenant for every day to do, summed from the
      member values in one set-based statement for all days.

    Each transaction of the rollup (a day and its neighbours, see RollupBatch)
    then only makes its days' rows equal to the staged totals. The totals depend
    on the tree, so a
    transaction checks, under the tree lock, that the tree is the one they were
    summed over, and sums them again (from the member values, not the events) if
    a tenant moved meanwhile.

    They are temporary tables of this database connection, dropped at the end.
    """

    MEMBERS = "rollup_member_values"
    ANCESTORS = "rollup_ancestors"
    TOTALS = "rollup_totals"

    def __init__(self, days: list[date], watermark: int, phases: PhaseClock | None = None):
        self.days = days
        self.watermark = watermark
        self.tree_fingerprint = None
        self.events_by_day: dict[date, int] = {}
        self.rows_by_day: dict[date, int] = {}
        self.phase = phases or PhaseClock()

    # PostgreSQL: room to hash the member groups in memory, and no JIT compilation,
    # whose start-up cost outweighs the work of each per-day statement.
    SESSION_SETTINGS = {"work_mem": "256MB", "jit": "off"}

    def __enter__(self):
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                for name, value in self.SESSION_SETTINGS.items():
                    cursor.execute(f"SET {name} = '{value}'")
        if self.days:
            with self.phase("stage member values"):
                self.stage_member_values()
            with self.phase("stage totals"), tree_write_lock():
                self.ensure_totals()
        return self

    def __exit__(self, *exc):
        with self.phase("drop work tables"), connection.cursor() as cursor:
            for table in (self.MEMBERS, self.ANCESTORS, self.TOTALS):
                cursor.execute(f"DROP TABLE IF EXISTS {table}")
            if connection.vendor == "postgresql":
                for name in self.SESSION_SETTINGS:
                    cursor.execute(f"RESET {name}")
        return False

    def stage_member_values(self) -> None:
        """One read of the events of every day to do (id ≤ watermark)."""
        first, last = self.days[0], self.days[-1]
        sql, params = member_values_sql(
            first=first,
            last=last,
            max_event_id=self.watermark,
            days=None if len(self.days) == (last - first).days + 1 else self.days,
            parallel=True,
            # (The ClickHouse read takes the days' bounds whatever: no need to ask.)
            bounded=uses_clickhouse() or not covers_every_event(first, last),
        )
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.MEMBERS}")
            cursor.execute(f"CREATE TEMPORARY TABLE {self.MEMBERS} AS {sql}", params)
            cursor.execute(f"SELECT day, SUM(n) FROM {self.MEMBERS} GROUP BY day")
            self.events_by_day = {as_date(day): int(n) for day, n in cursor.fetchall()}

    def stage_ancestors(self) -> None:
        """(member, ancestor) for every tenant and each of its ancestors, itself included."""
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.ANCESTORS}")
            cursor.execute(
                f"CREATE TEMPORARY TABLE {self.ANCESTORS} (member_id bigint, ancestor_id bigint)"
            )
            cursor.execute(f"{ancestry_sql()}INSERT INTO {self.ANCESTORS} SELECT * FROM ancestry")

    def stage_totals(self) -> None:
        """Subtree totals of every tenant for every day to do, in one statement.

        Raw SQL (see totals_sql), the same on SQLite and PostgreSQL. The table
        declares the billing table's column types: SQLite compares values of
        differing column affinities without using the index.
        """
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.TOTALS}")
            cursor.execute(
                f"CREATE TEMPORARY TABLE {self.TOTALS} (tenant_id bigint, meter_id bigint, "
                "day date, dimension varchar(256), source varchar(8), quantity decimal, "
                "event_count bigint)"
            )
            cursor.execute(
                f"INSERT INTO {self.TOTALS} {totals_sql(self.MEMBERS, self.ANCESTORS)} "
                # Stored by day: a transaction's days are then neighbouring pages.
                "ORDER BY m.day"
            )
            cursor.execute(f"CREATE INDEX {self.TOTALS}_key ON {self.TOTALS} ({TOTALS_KEY})")
            cursor.execute(f"ANALYZE {self.TOTALS}")
            cursor.execute(f"SELECT day, COUNT(*) FROM {self.TOTALS} GROUP BY day")
            self.rows_by_day = {as_date(day): n for day, n in cursor.fetchall()}

    def ensure_totals(self) -> None:
        """Sum the totals over the current tree, again if the tree moved since
        (called under the tree lock)."""
        fingerprint = tree_fingerprint()
        if fingerprint != self.tree_fingerprint:
            self.stage_ancestors()
            self.stage_totals()
            self.tree_fingerprint = fingerprint


def ancestry_sql() -> str:
    """A WITH clause naming `ancestry (member_id, ancestor_id)`: every tenant with
    itself and each of its ancestors, found by walking parent links (equality
    joins, not lft/rght ranges)."""
    return (
        "WITH RECURSIVE ancestry (member_id, ancestor_id) AS (SELECT id, id FROM accounts_tenant "
        "UNION ALL SELECT a.member_id, t.parent_id FROM ancestry a "
        "JOIN accounts_tenant t ON t.id = a.ancestor_id WHERE t.parent_id IS NOT NULL) "
    )


def totals_sql(members: str, ancestors: str) -> str:
    """A SELECT of subtree totals, in the billing table's columns, from the member
    values `members` (see billing.usage.day_values) and (member, ancestor) pairs
    `ancestors` (tables or parenthesized subqueries).

    Raw SQL because this is a set-based step the ORM cannot express: each member
    value is joined to every ancestor of its tenant and summed per ancestor,
    which is rule 3 for every aggregation.
    """
    return (
        "SELECT a.ancestor_id, m.meter_id, m.day, m.dimension, m.source, SUM(m.value), SUM(m.n) "
        f"FROM {members} m JOIN {ancestors} a ON a.member_id = m.tenant_id "
        "GROUP BY a.ancestor_id, m.meter_id, m.day, m.dimension, m.source"
    )


def covers_every_event(first: date, last: date) -> bool:
    """Whether every stored event occurred between `first` and `last` (UTC days).

    Two index lookups (separate queries: SQLite optimizes a lone MIN or MAX only).
    """
    if uses_clickhouse():
        earliest, latest = clickhouse_reads.event_span()
    else:
        events = UsageEvent.objects.order_by()
        earliest = events.aggregate(at=Min("occurred_at"))["at"]
        latest = events.aggregate(at=Max("occurred_at"))["at"]
    start, end = day_bounds(first, last)
    return earliest is None or (start <= earliest and latest < end)


def tree_fingerprint() -> tuple:
    """Changes whenever a tenant is added or moved."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*), COALESCE(SUM(parent_id), 0), COALESCE(SUM(lft * 7 + rght), 0), "
            "COALESCE(MAX(id), 0) FROM accounts_tenant"
        )
        return tuple(cursor.fetchone())
