"""Usage: from raw events to "how much", in the one usage query.

aggregations (what each meter aggregation means) -> day_values (a day's value per
member, in SQL) -> rollup and compaction (the billing table) -> tail and query
(`usage_summary`: the stored days plus the events that came after them).
"""

from billing.usage.grouping import GROUP_BYS, UsageFilters, UsageRow
from billing.usage.query import UsageSummary, usage_summary

__all__ = ["GROUP_BYS", "UsageFilters", "UsageRow", "UsageSummary", "usage_summary"]
