"""What billing does when something happens elsewhere."""

from django.db import transaction
from django.utils import timezone

from billing.alerts import check_block_limits
from billing.compaction import request_compaction
from billing.rollup import shift_history
from billing.schedules import install_schedules
from billing.statements import month_of, refresh_statement


def shift_history_on_move(sender, tenant, old_ancestor_ids, new_ancestor_ids, **kwargs):
    shift_history(tenant, old_ancestor_ids, new_ancestor_ids)


def install_schedules_after_migrate(sender, **kwargs):
    install_schedules()


def check_limits_on_ingest(sender, tenant_ids, meter_ids, **kwargs):
    check_block_limits(tenant_ids, meter_ids)


def compact_tail_on_ingest(sender, **kwargs):
    request_compaction()


def refresh_draft_on_subscription_change(sender, instance, **kwargs):
    """The open month's draft follows its subscriptions at once, not at the next rollup."""
    tenant = instance.tenant
    transaction.on_commit(lambda: refresh_statement(tenant, month_of(timezone.now().date())))
