"""Usage reports mailed on a schedule.

Each active schedule gets the report of its last complete period (the Monday-to-
Sunday week or the calendar month, UTC days) once: a row per period is claimed
before the mail goes out. Recipients get the key figures in the mail and the
report's tables by meter and by child as CSV — the page's own tables, so the
numbers are the page's.
"""

import logging
from datetime import date, timedelta

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from accounts.brands import effective_brand
from accounts.mail import branded_mail
from billing.periods import month_end, previous_month
from billing.usage.grouping import UsageFilters
from reports.date_ranges import DateRange
from reports.exports import table_csv_text
from reports.formatting import format_in
from reports.models import ReportDelivery, ReportSchedule
from reports.selectors import TenantReport, tenant_report
from reports.tables import ChildUsageTable, MeterTotalsTable

logger = logging.getLogger(__name__)
UNSUBSCRIBE_SALT = "report-unsubscribe"


def last_complete_period(frequency: str, today: date) -> DateRange:
    """The last whole week (Monday to Sunday) or calendar month before `today`."""
    if frequency == ReportSchedule.Frequency.WEEKLY:
        monday = today - timedelta(days=today.weekday() + 7)
        return DateRange(monday, monday + timedelta(days=6))
    month = previous_month(today)
    return DateRange(month, month_end(month))


def due_period(schedule: ReportSchedule, today: date) -> DateRange | None:
    """The period to send now; None before the first period that ends after the
    schedule was made (nobody asked for older reports)."""
    period = last_complete_period(schedule.frequency, today)
    return period if period.end >= schedule.created_at.date() else None


def send_due_reports(today: date | None = None) -> int:
    """Send every report that is due and not yet sent; how many went out. A report
    that fails to go out is logged and tried again on the next run; it never stops
    another tenant's."""
    today = today or timezone.now().date()
    sent = 0
    schedules = ReportSchedule.objects.filter(is_active=True, tenant__is_active=True)
    for schedule in schedules.select_related("tenant"):
        period = due_period(schedule, today)
        if period is None or not schedule.recipients:
            continue
        delivery = claim(schedule, period)
        if delivery is None:
            continue
        try:
            send_report(schedule, period, delivery)
        except Exception:  # noqa: BLE001 - one tenant's failure never stops another's
            logger.exception("Report of schedule %s for %s not sent", schedule.pk, period.start)
            delivery.delete()
        else:
            sent += 1
    return sent


def claim(schedule: ReportSchedule, period: DateRange) -> ReportDelivery | None:
    try:
        with transaction.atomic():
            return ReportDelivery.objects.create(
                schedule=schedule, period_start=period.start, period_end=period.end
            )
    except IntegrityError:
        return None  # sent already, or being sent by another worker


def send_report(schedule: ReportSchedule, period: DateRange, delivery: ReportDelivery) -> None:
    tenant = schedule.tenant
    report = tenant_report(tenant, period, UsageFilters())
    brand = effective_brand(tenant)
    which = "Weekly" if schedule.frequency == ReportSchedule.Frequency.WEEKLY else "Monthly"
    subject = f"{which} usage report: {tenant.name}, {period.start} to {period.end}"
    attachments = report_attachments(report)
    for recipient in schedule.recipients:
        body = report_body(report, schedule, recipient)
        message = branded_mail(brand, subject=subject, body=body, to=[recipient])
        message.extra_headers["List-Unsubscribe"] = f"<{unsubscribe_url(schedule, recipient)}>"
        for name, text in attachments:
            message.attach(name, text, "text/csv")
        message.send()
    ReportDelivery.objects.filter(pk=delivery.pk).update(
        sent_at=timezone.now(), recipients=list(schedule.recipients)
    )


def report_attachments(report: TenantReport) -> list[tuple[str, str]]:
    slug, period = report.tenant.slug, report.period
    children = ChildUsageTable(report.children, meters=report.meters)
    return [
        (
            f"meters-{slug}-{period.start}-{period.end}.csv",
            table_csv_text(MeterTotalsTable(report.cards)),
        ),
        (f"children-{slug}-{period.start}-{period.end}.csv", table_csv_text(children)),
    ]


def report_body(report: TenantReport, schedule: ReportSchedule, recipient: str) -> str:
    period, previous = report.period, report.previous_period
    lines = [
        f"Usage of {report.tenant.name} from {period.start} to {period.end} (UTC days), "
        f"compared with {previous.start} to {previous.end}:",
        "",
    ]
    used = [card for card in report.cards if card.quantity or card.previous]
    for card in used:
        unit = card.unit
        change = card.change_percent
        versus = "no usage before" if change is None else f"{change:+}% on the period before"
        lines.append(
            f"- {card.meter.name}: {format_in(card.quantity, unit)} {unit.symbol} ({versus})"
        )
    if not used:
        lines.append("- No usage in this period.")
    elif len(used) < len(report.cards):
        lines.append("- Every other meter: no usage in either period.")
    lines += [
        "",
        "Attached: the totals by meter and by child (exact stored values, as the portal's CSV).",
        f"The report online: {portal_url(reverse('reports:tenant', args=[report.tenant.slug]))}"
        f"?period=custom&start={period.start}&end={period.end}",
        "",
        f"You receive this {schedule.get_frequency_display().split(' ')[0].lower()} report because "
        f"a manager of {report.tenant.name} added you. Unsubscribe: "
        f"{unsubscribe_url(schedule, recipient)}",
    ]
    return "\n".join(lines) + "\n"


def portal_url(path: str) -> str:
    return settings.USAGE_PORTAL_URL.rstrip("/") + path


def unsubscribe_token(schedule: ReportSchedule, recipient: str) -> str:
    return signing.dumps({"s": schedule.pk, "e": recipient}, salt=UNSUBSCRIBE_SALT)


def unsubscribe_url(schedule: ReportSchedule, recipient: str) -> str:
    return portal_url(reverse("reports:unsubscribe", args=[unsubscribe_token(schedule, recipient)]))


def unsubscribe(token: str) -> tuple[ReportSchedule, str] | None:
    """Remove the token's address from its schedule; None for a token not ours."""
    try:
        data = signing.loads(token, salt=UNSUBSCRIBE_SALT)
    except signing.BadSignature:
        return None
    with transaction.atomic():
        schedule = (
            ReportSchedule.objects.select_for_update()
            .select_related("tenant")
            .filter(pk=data.get("s"))
            .first()
        )
        if schedule is None:
            return None
        email = str(data.get("e", ""))
        schedule.recipients = [r for r in schedule.recipients if r.lower() != email.lower()]
        schedule.save(update_fields=["recipients"])
    return schedule, email
