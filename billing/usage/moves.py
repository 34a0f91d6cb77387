"""A tenant moved to another parent: its usage history moves with it."""

from django.db import connection

from billing.models import DailyUsage


def shift_history(tenant, old_ancestor_ids: list[int], new_ancestor_ids: list[int]) -> None:
    """After a move, take the tenant's subtree totals off its old ancestors' rows
    and add them to its new ancestors' rows.

    Every subtree total is a sum over member tenants (rule 3), so moving a
    subtree changes each ancestor's rows by exactly the moved tenant's own rows:
    the same rows a full recomputation would give, without reading events.
    Runs inside the move's transaction.
    """
    leaving = [a for a in old_ancestor_ids if a not in new_ancestor_ids]
    joining = [a for a in new_ancestor_ids if a not in old_ancestor_ids]
    same_key = (
        "billing_dailyusage.meter_id = s.meter_id AND billing_dailyusage.day = s.day "
        "AND billing_dailyusage.dimension = s.dimension AND billing_dailyusage.source = s.source"
    )
    with connection.cursor() as cursor:
        for ancestor in leaving:
            cursor.execute(
                "UPDATE billing_dailyusage SET "
                "quantity = billing_dailyusage.quantity - s.quantity, "
                "event_count = billing_dailyusage.event_count - s.event_count "
                "FROM (SELECT meter_id, day, dimension, source, quantity, event_count "
                "FROM billing_dailyusage WHERE tenant_id = %s) s "
                f"WHERE billing_dailyusage.tenant_id = %s AND {same_key}",
                [tenant.pk, ancestor],
            )
        if leaving:
            DailyUsage.objects.filter(tenant_id__in=leaving, event_count__lte=0).delete()
        for ancestor in joining:
            cursor.execute(
                "INSERT INTO billing_dailyusage "
                "(tenant_id, meter_id, day, dimension, source, quantity, event_count) "
                "SELECT %s, meter_id, day, dimension, source, quantity, event_count "
                "FROM billing_dailyusage WHERE tenant_id = %s "
                "ON CONFLICT (tenant_id, day, meter_id, dimension, source) DO UPDATE SET "
                "quantity = billing_dailyusage.quantity + excluded.quantity, "
                "event_count = billing_dailyusage.event_count + excluded.event_count",
                [ancestor, tenant.pk],
            )
