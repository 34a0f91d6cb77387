"""django-q2 task entry points: thin wrappers over the services (and idempotent)."""

from billing.alerts import check_alerts
from billing.closing import close_months
from billing.statement_mail import retry_failed_statement_mail
from billing.statements import refresh_drafts
from billing.usage.compaction import prune_compaction_runs, run_compaction
from billing.usage.rollup import run_rollup


def scheduled_rollup() -> dict:
    """Roll up, then bring what is computed from the billing table up to date."""
    run = run_rollup(trigger="schedule")
    return {
        "run": run.pk,
        "days": run.days_recomputed,
        "rows": run.rows_written,
        "pruned": prune_compaction_runs(),
        **after_rollup(),
    }


def after_rollup() -> dict:
    return {
        "drafts": refresh_drafts(),
        "alerts": len(check_alerts()),
        "statement_mail": retry_failed_statement_mail(),
    }


def finalize_statements() -> dict:
    return close_months()


def compact_tail() -> dict:
    """Fold the events received since the last rollup into the billing table
    (see billing.usage.compaction).

    Statements and alerts wait for the scheduled rollup: this only shortens the
    real-time tail that every read adds up.
    """
    run = run_compaction()
    return {"run": run.pk, "days": run.days_recomputed, "events": run.events_read}
