"""django-q2 task entry points: thin wrappers over the services (and idempotent)."""

from billing.rollup import run_rollup


def scheduled_rollup() -> dict:
    run = run_rollup(trigger="schedule")
    return {"run": run.pk, "days": run.days_recomputed, "rows": run.rows_written}
