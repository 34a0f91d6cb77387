"""A final statement mailed, PDF attached, to its customer's managers: once.

Finalization announces the statement after its transaction commits; a task then
mails it, so a slow or failing mail server never holds or undoes finalization.
Once is `Statement.mailed_at`, claimed by a conditional update in the same
transaction as the sending: a second task for the statement (the signal sent
twice, a task handed out again) waits for the first and then finds it claimed;
a failed send rolls the claim back. Each recipient reads the mail in the brand
of the tenant they manage (`accounts.mail`). The plan owner's managers get a
copy when the plan says so (`Plan.copy_statements_to_owner`).

A failure is the tenant's alone, recorded like alert mail (`TenantFailure`, job
"statement_mail"); each scheduled rollup mails that tenant's unmailed statements
again until it succeeds.
"""

import logging

from django.utils import timezone
from django_q.tasks import async_task

from accounts.mail import branded_mail, managers_by_brand
from billing.documents import (
    document_filename,
    issuer_of,
    issuing_plan,
    statement_pdf,
)
from billing.failures import FailureLog, record_failure
from billing.models import Statement, TenantFailure
from billing.money import money_text
from billing.periods import month_of, previous_month
from utilities.text import header_text

logger = logging.getLogger(__name__)
JOB = TenantFailure.Job.STATEMENT_MAIL
TASK = "billing.statement_mail.mail_statement"


def queue_statement_mail(statement: Statement) -> None:
    """Hand the mail to the task cluster; if even that fails, the tenant's failure
    record makes the next rollup try again."""
    try:
        async_task(
            TASK, statement.pk, task_name=f"statement-mail-{statement.pk}", group="statement-mail"
        )
    except Exception as error:  # the statement is final whatever happens to its mail
        logger.exception("Statement mail for statement %s not queued", statement.pk)
        record_failure(statement.tenant, JOB, error)


def mail_statement(statement_id: int) -> str:
    """The task: mail the final statement unless it was mailed; says what it did."""
    statement = (
        Statement.objects.select_related("tenant")
        .filter(pk=statement_id, status=Statement.Status.FINAL)
        .first()
    )
    if statement is None:
        return "no final statement"
    if statement.mailed_at is not None:
        return "already mailed"
    failures, outcome = FailureLog(JOB), "failed"
    with failures.guard(statement.tenant):
        outcome = send_once(statement)
    return outcome


def send_once(statement: Statement) -> str:
    """Inside the guard's transaction: the claim commits only with a sent mail."""
    messages = statement_messages(statement)
    if not messages:
        return "no recipients"
    claimed = Statement.objects.filter(pk=statement.pk, mailed_at__isnull=True).update(
        mailed_at=timezone.now()
    )
    if not claimed:
        return "already mailed"
    for message in messages:
        message.send()
    return f"mailed {len(messages)}"


def recipient_groups(statement: Statement):
    """(brand, addresses, is_copy): the customer's managers, then, when the plan asks
    for copies, its owner's managers who are not already among them."""
    groups = [(brand, to, False) for brand, to in managers_by_brand([statement.tenant])]
    plan = issuing_plan(statement)
    if plan is not None and plan.owner is not None and plan.copy_statements_to_owner:
        mailed = {email for _, to, _ in groups for email in to}
        for brand, to in managers_by_brand([plan.owner]):
            fresh = [email for email in to if email not in mailed]
            if fresh:
                groups.append((brand, fresh, True))
    return groups


def statement_messages(statement: Statement) -> list:
    groups = recipient_groups(statement)
    if not groups:
        return []
    pdf = statement_pdf(statement)
    subject, body = statement_text(statement)
    messages = []
    for brand, to, is_copy in groups:
        message = branded_mail(
            brand,
            subject=f"Copy: {subject}" if is_copy else subject,
            body=body,
            to=to,
        )
        message.attach(document_filename(statement), pdf, "application/pdf")
        messages.append(message)
    return messages


def statement_text(statement: Statement) -> tuple[str, str]:
    tenant = statement.tenant
    _, issuer = issuer_of(issuing_plan(statement))
    total = money_text(statement.total, statement.currency)
    subject = header_text(
        f"Statement {statement.number} for {tenant.name}, {statement.period:%B %Y}: {total}"
    )
    body = (
        f"The statement of {tenant.name} ({tenant.slug}) for {statement.period:%B %Y} is "
        f"final.\n\n"
        f"Number: {statement.number}\n"
        f"Issued by: {issuer.name}\n"
        f"Total: {total}\n\n"
        f"The statement is attached as a PDF.\n"
    )
    return subject, body


def retry_failed_statement_mail() -> int:
    """Mail again the unmailed final statements of tenants whose statement mail
    failed: those of the month before the first failure and later (older finals
    predate statement mail). Returns how many were mailed."""
    mailed = 0
    for failure in TenantFailure.objects.filter(job=JOB).select_related("tenant"):
        since = previous_month(month_of(failure.first_failed_at.date()))
        pending = Statement.objects.filter(
            tenant=failure.tenant,
            status=Statement.Status.FINAL,
            mailed_at__isnull=True,
            period__gte=since,
        ).values_list("pk", flat=True)
        for statement_id in pending:
            mailed += mail_statement(statement_id).startswith("mailed")
    return mailed
