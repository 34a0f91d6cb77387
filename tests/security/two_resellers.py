"""Data on both sides of the isolation line, for the generated isolation tests.

Reseller A (under partner P) and reseller B (under the platform) each get one object
of every tenant-owned model. Everything of B's carries a marker the tests look
for: a tenant slug or name of B's, or the word "bravo".
"""

import re
from dataclasses import dataclass
from decimal import Decimal

from django.utils import timezone

from accounts.models import ApiKey, Brand, Membership, PlatformPrincipal, Tenant
from billing.models import (
    DailyUsage,
    Plan,
    PlanItem,
    Statement,
    StatementLine,
    Subscription,
    TenantFailure,
    UsageAlert,
)
from metering.ingestion import ingest_events
from metering.models import Meter, UsageEvent
from reports.models import ReportDelivery, ReportSchedule
from tests.factories import make_user
from webhooks.models import Webhook, WebhookAttempt, WebhookDelivery, WebhookEvent

# B's staff member "bob" is matched as written: the plan form's currency list holds
# BOB, the Bolivian boliviano, on every side.
B_MARKERS = re.compile(
    r"bravo|reseller-b|org-b|agent-b|Reseller B|Org B|Agent B|(?-i:\bbob\b)", re.I
)


def b_markers_in(text: str) -> list[str]:
    return sorted(set(B_MARKERS.findall(text)))


def side(world, prefix: str, reseller: Tenant, org: Tenant, agent: Tenant, staff) -> dict:
    """Every tenant-owned model's objects for one reseller's tree."""
    today = timezone.now().date()
    period = today.replace(day=1)
    meter = Meter.objects.get(code="call_minutes")
    wholesale = Plan.objects.create(
        code=f"{prefix}-wholesale",
        name=f"{prefix.title()} Wholesale",
        owner=world.partner if prefix == "alpha" else None,
    )
    retail = Plan.objects.create(code=f"{prefix}-retail", name=f"{prefix.title()} Retail",
                                 owner=reseller)  # fmt: skip
    custom = Plan.objects.create(
        code=f"{prefix}-custom", name=f"{prefix.title()} Custom", owner=reseller, customer=org
    )
    item = PlanItem.objects.create(plan=retail, meter=meter, included_quantity=Decimal("10"),
                                   thresholds=[80])  # fmt: skip
    Subscription.objects.create(tenant=reseller, plan=wholesale, starts_on=period)
    subscription = Subscription.objects.create(tenant=org, plan=retail, starts_on=period)
    statement = Statement.objects.create(
        tenant=org, period=period, currency="USD", base_fee=Decimal("1"),
        usage_amount=Decimal("2"), total=Decimal("3"), as_of=timezone.now(),
    )  # fmt: skip
    StatementLine.objects.create(
        statement=statement, meter=meter, plan_code=retail.code, starts_on=period, ends_on=today,
        used=Decimal("12"), included=Decimal("10"), overage=Decimal("2"), amount=Decimal("2"),
    )  # fmt: skip
    alert = UsageAlert.objects.create(
        tenant=org, subscription=subscription, plan_item=item, percent=80, period=period,
        usage=Decimal("12"), base=Decimal("10"),
    )  # fmt: skip
    ingest_events(
        [{"event_id": f"{prefix}-evt-1", "tenant": agent.slug, "meter": meter.code,
          "quantity": "12", "timestamp": timezone.now().isoformat()}],
        principal=PlatformPrincipal(),
    )  # fmt: skip
    usage = DailyUsage.objects.create(
        tenant=agent, meter=meter, day=today, source="api", quantity=Decimal("12"), event_count=1
    )
    key, _ = ApiKey.objects.create_key(name=f"{prefix}-key", tenant=reseller, scopes=["read"])
    viewer = make_user(f"{prefix}-viewer", org, "viewer")
    failure = TenantFailure.objects.create(
        tenant=org, job=TenantFailure.Job.STATEMENT, error=f"{prefix} failure",
        first_failed_at=timezone.now(), last_failed_at=timezone.now(),
    )  # fmt: skip
    brand = Brand.objects.create(tenant=reseller, name=f"{prefix.title()} Brand")
    webhook = Webhook.objects.create(tenant=reseller, url=f"https://hooks.{prefix}.example/in",
                                     events=["alert.raised"], secret=f"whsec_{prefix}")  # fmt: skip
    event = WebhookEvent.objects.create(
        id=f"evt_{prefix}", type="alert.raised", tenant=org, created=timezone.now(), body="{}"
    )
    delivery = WebhookDelivery.objects.create(webhook=webhook, event=event)
    attempt = WebhookAttempt.objects.create(delivery=delivery, attempt=1, status_code=500,
                                            duration_ms=3, created=timezone.now())  # fmt: skip
    schedule = ReportSchedule.objects.create(tenant=reseller, frequency="weekly",
                                             recipients=[f"{prefix}@example.com"])  # fmt: skip
    sent = ReportDelivery.objects.create(
        schedule=schedule, period_start=period, period_end=today, recipients=schedule.recipients
    )
    return {
        Brand: [brand],
        Webhook: [webhook],
        WebhookEvent: [event],
        WebhookDelivery: [delivery],
        WebhookAttempt: [attempt],
        ReportSchedule: [schedule],
        ReportDelivery: [sent],
        TenantFailure: [failure],
        Tenant: [org, agent, reseller],
        Plan: [retail, wholesale, custom],
        PlanItem: [item],
        Subscription: [subscription],
        Statement: [statement],
        UsageAlert: [alert],
        UsageEvent: list(UsageEvent.objects.filter(event_id=f"{prefix}-evt-1")),
        DailyUsage: [usage],
        ApiKey: [key],
        Membership: list(Membership.objects.filter(user__in=[viewer, staff])),
        type(viewer): [viewer, staff],
    }


@dataclass
class TwoResellers:
    """model -> that side's objects of the model."""

    a: dict
    b: dict

    def b_pks(self, model) -> set:
        return {obj.pk for obj in self.b.get(model, [])}


def two_resellers(world, users) -> TwoResellers:
    a = side(world, "alpha", world.reseller_a, world.org_a, world.agent_a, users["manager_a"])
    b = side(world, "bravo", world.reseller_b, world.org_b, world.agent_b, users["manager_b"])
    return TwoResellers(a, b)
