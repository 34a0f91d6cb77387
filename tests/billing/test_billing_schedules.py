"""The monthly finalization is scheduled, and the scheduled tasks keep statements current."""

from datetime import UTC, datetime
from decimal import Decimal as D

from django.core.management import call_command
from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.models import Schedule

from billing.models import Plan, PlanItem, Statement, Subscription
from billing.periods import month_of
from billing.schedules import FINALIZE_SCHEDULE, install_schedules, next_month_start
from metering.models import Meter
from tests.billing.conftest import send


def test_finalize_schedule_is_monthly_after_the_period_closes(db):
    install_schedules()
    install_schedules()
    [schedule] = Schedule.objects.filter(name=FINALIZE_SCHEDULE)
    assert schedule.schedule_type == Schedule.MONTHLY
    assert schedule.next_run.day == 1 and schedule.next_run > timezone.now()
    assert import_string(schedule.func)() == {"alerts": 0, "finalized": 0}


def test_next_month_start_crosses_the_year():
    now = datetime(2026, 12, 31, 23, 59, tzinfo=UTC)
    assert next_month_start(now) == datetime(2027, 1, 1, 0, 30, tzinfo=UTC)


def test_rollup_command_refreshes_drafts(world):
    plan = Plan.objects.create(code="p", name="P", owner=world.reseller_a, base_fee=D("10"))
    PlanItem.objects.create(plan=plan, meter=Meter.objects.get(code="emails"), unit_price=D("0.5"))
    Subscription.objects.create(
        tenant=world.org_a, plan=plan, starts_on=month_of(timezone.now().date())
    )
    send(*[{"tenant": "agent-a", "meter": "emails", "quantity": 1}] * 4)
    call_command("rollup", "--no-progress", "--grace", "0")
    statement = Statement.objects.get(tenant=world.org_a)
    assert statement.total == D("12.00")
