"""Statement mail: a final statement reaches its customer's managers once, PDF
attached, in their brand, after finalization commits; the plan owner's managers
get a copy when the plan asks; one tenant's failure never stops another's mail."""

import smtplib

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend
from django_q.models import OrmQ

from billing.models import Statement, TenantFailure
from billing.signals import statement_finalized
from billing.statement_mail import TASK, mail_statement, retry_failed_statement_mail
from billing.statements import finalize_closed_periods, refresh_statement
from billing.tasks import after_rollup
from tests.billing.statement_world import (
    BRAND_NAME,
    bill_closed_month,
    brand_reseller,
    pdf_text,
    tiered_plan,
)
from tests.factories import make_user


class RefusingBackend(EmailBackend):
    """The locmem outbox, except that it refuses any address at refused.example, as a
    mail server refusing a recipient would."""

    def send_messages(self, messages):
        for message in messages:
            refused = [a for a in message.recipients() if a.endswith("@refused.example")]
            if refused:
                raise smtplib.SMTPRecipientsRefused({a: (550, b"no") for a in refused})
        return super().send_messages(messages)


@pytest.fixture
def draft(world, users):
    brand_reseller(world.reseller_a)
    make_user("omar", world.org_a, "manager", email="omar@org-a.example")
    make_user("olive", world.org_a, "viewer", email="olive@org-a.example")  # not a manager
    users["manager_a"].email = "alice@reseller-a.example"
    users["manager_a"].save()
    return bill_closed_month(world.org_a, tiered_plan(world.reseller_a))


def queued_mail() -> list[int]:
    """The statement ids of the statement mail tasks waiting for a worker."""
    tasks = OrmQ.objects.order_by("id")
    return [task.task["args"][0] for task in tasks if task.func() == TASK]


def run_queued() -> None:
    for statement_id in queued_mail():
        mail_statement(statement_id)


def finalize(statement, capture):
    with capture(execute=True):
        return refresh_statement(statement.tenant, statement.period, final=True)


def test_final_statement_is_mailed_once_to_the_customers_managers(
    draft, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        final = refresh_statement(draft.tenant, draft.period, final=True)
        # Inside the finalization nothing is queued or sent: it waits for the commit.
        assert queued_mail() == [] and mail.outbox == []
    for callback in callbacks:
        callback()
    assert queued_mail() == [final.pk]
    run_queued()
    [message] = mail.outbox
    assert message.to == ["omar@org-a.example"]
    assert message.from_email.startswith(BRAND_NAME)
    assert message.subject.startswith(f"[{BRAND_NAME}] Statement {final.number} for Org A")
    assert "1,500.00 USD" in message.subject and final.number in message.body
    assert message.reply_to == ["billing@alpha.example"]
    [(name, content, mimetype)] = message.attachments
    assert mimetype == "application/pdf" and name.endswith(".pdf")
    assert content.startswith(b"%PDF-")
    assert final.number in pdf_text(content) and "DRAFT" not in pdf_text(content)
    assert Statement.objects.get(pk=final.pk).mailed_at is not None


def test_twice_finalized_signalled_or_run_is_still_one_mail(
    draft, django_capture_on_commit_callbacks
):
    final = finalize(draft, django_capture_on_commit_callbacks)
    finalize(draft, django_capture_on_commit_callbacks)  # already final: no new announcement
    with django_capture_on_commit_callbacks(execute=True):
        finalize_closed_periods()
    assert queued_mail() == [final.pk]
    statement_finalized.send(sender=Statement, statement=final)  # announced again
    assert queued_mail() == [final.pk, final.pk]
    run_queued()
    assert mail_statement(final.pk) == "already mailed"  # the task handed out again
    assert len(mail.outbox) == 1


def test_owner_managers_are_copied_only_when_the_plan_says_so(
    draft, world, django_capture_on_commit_callbacks
):
    mail_statement(finalize(draft, django_capture_on_commit_callbacks).pk)
    assert [m.to for m in mail.outbox] == [["omar@org-a.example"]]

    mail.outbox.clear()
    plan = tiered_plan(world.reseller_a, code="a-copied", copy_statements_to_owner=True)
    make_user("oscar", world.org_b, "manager", email="oscar@org-b.example")
    other = bill_closed_month(world.org_b, plan_for_b(world))
    mail_statement(finalize(other, django_capture_on_commit_callbacks).pk)
    assert [m.to for m in mail.outbox] == [["oscar@org-b.example"]]  # B's plan does not copy

    mail.outbox.clear()
    make_user("oona", world.org_a, "manager", email="oona@org-a.example")
    org = world.org_a
    org.subscriptions.all().delete()
    Statement.objects.filter(tenant=org).delete()
    statement = bill_closed_month(org, plan)
    mail_statement(finalize(statement, django_capture_on_commit_callbacks).pk)
    customer, copy = mail.outbox
    assert customer.to == ["omar@org-a.example", "oona@org-a.example"]
    assert copy.to == ["alice@reseller-a.example"]
    assert copy.subject.startswith(f"[{BRAND_NAME}] Copy: Statement")
    assert copy.attachments[0][2] == "application/pdf"


def plan_for_b(world):
    return tiered_plan(world.reseller_b, code="b-tiered")


def test_a_refused_mail_is_recorded_for_its_tenant_and_others_still_get_theirs(
    draft, world, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "tests.billing.test_statement_mail.RefusingBackend"
    refused = make_user("rex", world.org_b, "manager", email="rex@refused.example")
    other = bill_closed_month(world.org_b, plan_for_b(world))
    with django_capture_on_commit_callbacks(execute=True):
        finalize_closed_periods()
    run_queued()
    assert [m.to for m in mail.outbox] == [["omar@org-a.example"]]
    [failure] = TenantFailure.objects.all()
    assert (failure.tenant, failure.job) == (world.org_b, TenantFailure.Job.STATEMENT_MAIL)
    assert "SMTPRecipientsRefused" in failure.error
    assert Statement.objects.get(pk=other.pk).mailed_at is None  # the claim rolled back

    assert retry_failed_statement_mail() == 0  # still refused
    assert TenantFailure.objects.get().attempts == 2
    refused.email = "rex@org-b.example"
    refused.save()
    assert after_rollup()["statement_mail"] == 1  # the next rollup mails it
    assert mail.outbox[-1].to == ["rex@org-b.example"]
    assert not TenantFailure.objects.exists()
    assert retry_failed_statement_mail() == 0
    assert len(mail.outbox) == 2


def test_a_draft_or_a_statement_without_managers_is_not_mailed(world, users):
    brand_reseller(world.reseller_a)
    statement = bill_closed_month(world.org_a, tiered_plan(world.reseller_a))
    assert mail_statement(statement.pk) == "no final statement"
    final = refresh_statement(world.org_a, statement.period, final=True)
    assert mail_statement(final.pk) == "no recipients"  # Org A has no manager with an address
    assert mail.outbox == [] and Statement.objects.get(pk=final.pk).mailed_at is None


def test_copy_switch_is_on_the_plans_admin_form(world, users, client):
    plan = tiered_plan(world.reseller_a)
    client.force_login(users["manager_a"])
    page = client.get(f"/admin/billing/plan/{plan.pk}/change/").content.decode()
    assert 'name="copy_statements_to_owner"' in page
