"""What billing does when something happens elsewhere."""

import logging

from django.db import transaction
from django.utils import timezone

from billing.alerts import check_block_limits
from billing.failures import guarded
from billing.models import TenantFailure
from billing.periods import month_of
from billing.schedules import install_schedules
from billing.statement_mail import queue_statement_mail
from billing.statements import refresh_statement
from billing.usage.compaction import request_compaction
from billing.usage.moves import shift_history

logger = logging.getLogger(__name__)


def shift_history_on_move(sender, tenant, old_ancestor_ids, new_ancestor_ids, **kwargs):
    shift_history(tenant, old_ancestor_ids, new_ancestor_ids)


def install_schedules_after_migrate(sender, **kwargs):
    install_schedules()


def check_limits_on_ingest(sender, tenant_ids, meter_ids, **kwargs):
    # After the events committed: whatever fails here must not turn the accepted
    # batch into an error answer (check_alerts records each tenant's failure).
    try:
        check_block_limits(tenant_ids, meter_ids)
    except Exception:  # the events are stored; the next rollup re-checks
        logger.exception("Block-limit check after ingestion failed")


def compact_tail_on_ingest(sender, **kwargs):
    request_compaction()


def mail_statement_on_finalize(sender, statement, **kwargs):
    # Sent after finalization committed; the mail itself waits for a worker.
    queue_statement_mail(statement)


def refresh_draft_on_subscription_change(sender, instance, **kwargs):
    """The open month's draft follows its subscriptions at once, not at the next rollup."""
    tenant = instance.tenant
    period = month_of(timezone.now().date())
    transaction.on_commit(
        lambda: guarded(
            TenantFailure.Job.STATEMENT, tenant, lambda: refresh_statement(tenant, period)
        )
    )
