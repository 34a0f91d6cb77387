"""Closing a month: its alerts are raised from its complete usage, then its
statements are frozen. Alerts belong to the month of the usage, so a month's
last alerts must be checked before nothing about it can change any more."""

from datetime import date

from django.utils import timezone

from billing.alerts import check_alerts
from billing.statements import finalize_closed_periods, periods_to_finalize


def close_months(today: date | None = None) -> dict:
    today = today or timezone.now().date()
    closing = periods_to_finalize(today)
    alerts = check_alerts(today=today, periods=closing) if closing else []
    return {"alerts": len(alerts), "finalized": finalize_closed_periods(today)}
