"""What a summary asks for: its filters, and how its rows are grouped."""

import bisect
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from accounts.models import Tenant
from metering.models import Meter

GROUP_BYS = ("meter", "day", "child", "source", "dimension")


@dataclass(frozen=True)
class UsageFilters:
    meters: tuple[str, ...] = ()
    category: str = ""
    source: str = ""
    dimension: str | None = None
    # Every dimension but these (the rest of a meter priced per dimension value).
    exclude_dimensions: tuple[str, ...] = ()

    def admits(self, source: str, dimension: str) -> bool:
        """Whether usage of this source and dimension passes the filters."""
        return (
            (not self.source or source == self.source)
            and (self.dimension is None or dimension == self.dimension)
            and dimension not in self.exclude_dimensions
        )


@dataclass
class UsageRow:
    meter: Meter
    quantity: Decimal
    event_count: int
    key: object = None  # the group: a day, a child Tenant, a source or a dimension value


class Grouping:
    """How stored rows and member tenants map onto the requested groups."""

    def __init__(self, tenant: Tenant, group_by: str):
        self.tenant = tenant
        self.group_by = group_by
        self.children = list(tenant.get_children().order_by("lft")) if group_by == "child" else []
        self._lefts = [c.lft for c in self.children]
        # The DailyUsage / UsageEvent column a group comes from, if any.
        self.row_field = {"source": "source", "dimension": "dimension"}.get(group_by)

    def key_of(self, *, day: date, column_value=None, child: int | None = None):
        """The group of a value: `child` is the member's group by child (see
        member_group), `column_value` its source or dimension."""
        if self.group_by == "day":
            return day
        if self.row_field:
            return column_value
        if self.group_by == "child":
            return child
        return None

    def member_group(self, lft: int) -> int:
        """The id of the direct child whose subtree holds a member (by lft), or of
        the tenant itself. Groups are keyed by id while summing (hashing a model
        instance costs more than the addition) and resolved by `resolve`."""
        i = bisect.bisect_right(self._lefts, lft) - 1
        if i >= 0 and self.children[i].holds_position(self.tenant.tree_id, lft):
            return self.children[i].pk
        return self.tenant.pk

    def resolve(self, rows: list[UsageRow]) -> list[UsageRow]:
        """Grouped by child: the rows' tenant ids become the tenants."""
        if self.group_by == "child":
            by_id = {self.tenant.pk: self.tenant, **{c.pk: c for c in self.children}}
            for row in rows:
                row.key = by_id[row.key]
        return rows
