"""The records page's table when events live outside the relational table
(ClickHouse): django-tables2 data read a page at a time from the event store,
sorted by the store, and its CSV streamed the same way.

The table's columns and their sort keys are UsageEventTable's; each sort key (a
values() path) becomes a ClickHouse order term here. Tenants sort in tree order
and meters by code through their position in a list of ids.
"""

from types import SimpleNamespace

from django_tables2.data import TableData
from django_tables2.utils import OrderBy

from accounts.models import Tenant
from metering.models import Meter
from metering.records import RecordQuery

# values() path of a sort key -> ClickHouse order term.
TENANT_PLACE = "indexOf({tenant_order:Array(UInt64)}, tenant_id)"
METER_PLACE = "indexOf({meter_order:Array(UInt64)}, meter_id)"
ORDER_TERMS = {
    "occurred_at": ["occurred_at"],
    "received_at": ["received_at"],
    "id": ["batch", "tenant_id", "event_id"],
    "quantity": ["quantity"],
    "source": ["source"],
    "dimension": ["dimension"],
    "event_id": ["event_id"],
    "tenant__tree_id": [],  # with tenant__lft: the tenant's place in tree order
    "tenant__lft": [TENANT_PLACE],
    "tenant__name": [TENANT_PLACE],
    "meter__code": [METER_PLACE],
    "meter__unit": [METER_PLACE],
}
CSV_CHUNK = 2000


class StoreTableData(TableData):
    def __init__(self, store, query: RecordQuery):
        super().__init__([])
        self.store = store
        self.query = query
        self.order = ""
        self._rows: dict[tuple[int, int], list] = {}
        self._count = None

    def __len__(self):
        if self._count is None:
            self._count = self.store.count_records(self.query)
        return self._count

    def __iter__(self):
        offset = 0
        while True:
            rows = self[offset : offset + CSV_CHUNK]
            yield from rows
            if len(rows) < CSV_CHUNK:
                return
            offset += CSV_CHUNK

    def __getitem__(self, key):
        if isinstance(key, int):
            rows = self[key : key + 1]
            if not rows:
                raise IndexError(key)
            return rows[0]
        start, stop = key.start or 0, key.stop
        if (start, stop) not in self._rows:
            records = self.store.records(self.query, stop - start, start, self.order)
            self._rows[(start, stop)] = rows_of(records)
        return self._rows[(start, stop)]

    def order_by(self, aliases):
        """Sort as the columns' order_by paths say, in the store."""
        terms = []
        for alias in aliases:
            column = self.table.columns[OrderBy(alias).bare]
            paths = (
                column.order_by
                if alias[0] == column.order_by_alias[0]
                else (column.order_by.opposite)
            )
            for path in paths:
                direction = "DESC" if path.is_descending else "ASC"
                terms += [f"{part} {direction}" for part in ORDER_TERMS.get(path.bare, [])]
        self.order = ", ".join(dict.fromkeys(terms))
        self.query.order_params = order_params(self.query)
        self._rows.clear()

    @property
    def verbose_name(self):
        return "usage record"

    @property
    def verbose_name_plural(self):
        return "usage records"


def order_params(query: RecordQuery) -> dict:
    tenants = Tenant.objects.order_by("tree_id", "lft")
    if query.tenant_ids is not None:
        tenants = tenants.filter(pk__in=query.tenant_ids)
    return {
        "tenant_order": list(tenants.values_list("pk", flat=True)),
        "meter_order": list(Meter.objects.order_by("code").values_list("pk", flat=True)),
    }


def rows_of(records) -> list[SimpleNamespace]:
    """Records as rows the table's accessors read (tenant__name, meter__code, …)."""
    tenants = {
        t.pk: t
        for t in Tenant.objects.filter(pk__in={r.tenant_id for r in records}).only(
            "pk", "name", "slug", "tree_id", "lft"
        )
    }
    meters = {m.pk: m for m in Meter.objects.all()}
    return [
        SimpleNamespace(
            **record._asdict(), tenant=tenants[record.tenant_id], meter=meters[record.meter_id],
            id=record.key,
        )
        for record in records
    ]  # fmt: skip


def resolve(row, path: str):
    """A values() path ("tenant__slug") read from a row."""
    value = row
    for part in path.split("__"):
        value = getattr(value, part)
    return value
