"""A brute-force, pure-Python answer to "how much": the reference usage_summary must match."""

from collections import defaultdict
from datetime import UTC
from decimal import Decimal
from types import SimpleNamespace

from accounts.models import Tenant
from metering.models import Meter
from metering.stores import event_store

Q6 = Decimal("0.000001")


def brute_force(tenant, start, end, group_by="meter", meters=None, source="", dimension=None):
    """{(meter code, group label): (quantity, event count)} straight from the events."""
    tenant = Tenant.objects.get(pk=tenant.pk)
    members = {t.pk: t for t in tenant.get_descendants(include_self=True)}
    children = list(tenant.get_children())
    meter_of = {m.pk: m for m in Meter.objects.all()}
    events = [
        # Stores give events in arrival order: `id` breaks ties as the event id does.
        SimpleNamespace(**e._asdict(), meter=meter_of[e.meter_id], id=arrival)
        for arrival, e in enumerate(event_store().events(tenant_ids=members))
        if start <= e.occurred_at.astimezone(UTC).date() <= end
        and (meters is None or e.meter.code in meters)
        and (not source or e.source == source)
        and (dimension is None or e.dimension == dimension)
    ]

    def group_of(event):
        day = event.occurred_at.astimezone(UTC).date()
        if group_by == "day":
            return day.isoformat()
        if group_by == "source":
            return event.source
        if group_by == "dimension":
            return event.dimension
        if group_by == "child":
            member = members[event.tenant_id]
            for child in children:
                if child.lft <= member.lft <= child.rght:
                    return child.slug
            return tenant.slug
        return None

    # Per member tenant, day, dimension and source: the day's value.
    series = defaultdict(list)
    for e in events:
        day = e.occurred_at.astimezone(UTC).date()
        series[(e.meter, group_of(e), e.tenant_id, day, e.dimension, e.source)].append(e)
    daily = defaultdict(lambda: [Decimal(0), 0])
    uniques = defaultdict(set)
    counts = defaultdict(int)
    for (meter, group, tenant_id, day, _, _), evs in series.items():
        agg = meter.aggregation
        if agg == "unique_count":
            uniques[(meter.code, group)] |= {
                (tenant_id, e.attributes[meter.unique_key]) for e in evs
            }
            counts[(meter.code, group)] += len(evs)
            continue
        if agg == "sum":
            value = sum((e.quantity for e in evs), Decimal(0))
        elif agg == "count":
            value = Decimal(len(evs))
        elif agg == "max":
            value = max(e.quantity for e in evs)
        else:
            value = max(evs, key=lambda e: (e.occurred_at, e.id)).quantity
        cell = daily[(meter, group, day)]
        cell[0] += value
        cell[1] += len(evs)
    by_group = defaultdict(list)
    for (meter, group, day), (value, n) in daily.items():
        by_group[(meter, group)].append((day, value, n))
    result = {}
    for (meter, group), days in by_group.items():
        days.sort()
        if meter.aggregation in ("sum", "count"):
            value = sum(d[1] for d in days)
        elif meter.aggregation == "max":
            value = max(d[1] for d in days)
        else:
            value = days[-1][1]
        result[(meter.code, group)] = (Decimal(value).quantize(Q6), sum(d[2] for d in days))
    for key, values in uniques.items():
        result[key] = (Decimal(len(values)).quantize(Q6), counts[key])
    return result


def summary_as_dict(summary):
    def label(key):
        if isinstance(key, Tenant):
            return key.slug
        if hasattr(key, "isoformat"):
            return key.isoformat()
        return key

    return {
        (r.meter.code, label(r.key)): (r.quantity, r.event_count)
        for r in summary.rows
        if r.event_count
    }
