"""Webhooks: managed per tenant, scoped to its subtree, signed, retried with backoff
against a real receiver on loopback, logged per try, disabled after three days."""

import json
import threading
import time
from datetime import timedelta
from decimal import Decimal as D
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail
from django.utils import timezone
from django_q.models import OrmQ, Schedule

from accounts.models import ApiKey
from billing.alerts import check_alerts
from billing.models import Plan, PlanItem, UsageAlert
from billing.periods import month_of
from billing.plans import subscribe
from billing.statements import refresh_statement
from metering.models import Meter
from tests.factories import make_user
from webhooks.delivery import MAX_ATTEMPTS, RETRY_DELAYS, deliver, deliver_due, retry_delay
from webhooks.models import Webhook, WebhookDelivery, WebhookEvent
from webhooks.signing import verify

HOOKS = "/api/v1/webhooks/"


class Receiver:
    """An HTTP endpoint on loopback: records each POST, answers from a script."""

    def __init__(self):
        self.requests: list[dict] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"headers": dict(self.headers), "body": body})
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                answer = b"x" * 1000 if status >= 500 else b"ok"
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver(settings):
    settings.USAGE_WEBHOOK_ALLOW_PRIVATE = True
    endpoint = Receiver()
    yield endpoint
    endpoint.server.shutdown()


def create(api, user, tenant, url, events=("alert.raised",)):
    return api(user).post(
        HOOKS, {"tenant": tenant, "url": url, "events": list(events)}, format="json"
    )


def raise_alerts(capture):
    """Raise this month's alerts again, running what waits for the commit."""
    UsageAlert.objects.all().delete()
    with capture(execute=True):
        check_alerts()


# --- managing webhooks ---------------------------------------------------------------


def test_a_manager_creates_a_webhook_and_sees_its_secret_once(world, users, api, receiver):
    response = create(api, users["manager_a"], "reseller-a", receiver.url)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["secret"].startswith("whsec_") and body["tenant"] == "reseller-a"
    assert body["events"] == ["alert.raised"] and body["is_active"] is True
    listed = api(users["manager_a"]).get(HOOKS).json()["results"]
    assert [w["id"] for w in listed] == [body["id"]] and "secret" not in listed[0]
    assert "secret" not in api(users["manager_a"]).get(f"{HOOKS}{body['id']}/").json()


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://127.0.0.1:9/hook", "private, loopback or reserved"),
        ("http://10.0.0.7/hook", "private, loopback or reserved"),
        ("http://[::1]/hook", "private, loopback or reserved"),
        ("http://localhost/hook", "private, loopback or reserved"),
        ("ftp://example.com/hook", "http:// or https://"),
    ],
)
def test_private_and_odd_addresses_are_refused(world, users, api, url, words):
    response = create(api, users["manager_a"], "reseller-a", url)
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["field"] == "url" and words in error["message"]
    assert not Webhook.objects.exists()


def test_a_name_that_does_not_resolve_yet_is_accepted(world, users, api):
    response = create(api, users["manager_a"], "reseller-a", "https://hooks.not-yet.invalid/x")
    assert response.status_code == 201


@pytest.mark.parametrize("events", [[], ["alert.raised", "invoice.paid"], "alert.raised"])
def test_event_types_are_checked(world, users, api, receiver, events):
    response = api(users["manager_a"]).post(
        HOOKS, {"tenant": "reseller-a", "url": receiver.url, "events": events}, format="json"
    )
    assert response.status_code == 400 and response.json()["errors"][0]["field"].startswith(
        "events"
    )


def test_another_resellers_manager_gets_404_and_cannot_create_for_it(world, users, api, receiver):
    hook = create(api, users["manager_a"], "reseller-a", receiver.url).json()
    other = api(users["manager_b"])
    own = f"{HOOKS}{hook['id']}/"
    for method, url in (
        ("get", own),
        ("get", f"{own}deliveries/"),
        ("patch", own),
        ("delete", own),
    ):
        assert getattr(other, method)(url, {}, format="json").status_code == 404, (method, url)
    assert other.get(HOOKS).json()["results"] == []
    response = create(api, users["manager_b"], "reseller-a", receiver.url)
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "tenant"
    # A viewer of the tenant neither lists nor creates its webhooks.
    assert api(users["viewer_a"]).get(HOOKS).json()["results"] == []
    assert create(api, users["viewer_a"], "reseller-a", receiver.url).status_code == 400
    assert Webhook.objects.count() == 1


def test_api_keys_do_not_manage_webhooks(world, users, api, receiver):
    key, secret = ApiKey.objects.create_key(name="k", tenant=world.reseller_a, scopes=["read"])
    client = api()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {secret}")
    assert client.get(HOOKS).status_code == 403
    body = {"tenant": "reseller-a", "url": receiver.url, "events": ["alert.raised"]}
    assert client.post(HOOKS, body, format="json").status_code == 403
    hook = create(api, users["manager_a"], "reseller-a", receiver.url).json()
    assert client.get(f"{HOOKS}{hook['id']}/").status_code == 404


def test_patch_changes_url_and_events_with_the_same_checks(world, users, api, receiver, settings):
    hook = create(api, users["manager_a"], "reseller-a", receiver.url).json()
    url = f"{HOOKS}{hook['id']}/"
    body = {"events": ["statement.finalized", "alert.raised"]}
    response = api(users["manager_a"]).patch(url, body, format="json")
    assert response.json()["events"] == ["alert.raised", "statement.finalized"]
    settings.USAGE_WEBHOOK_ALLOW_PRIVATE = False
    response = api(users["manager_a"]).patch(url, {"url": "http://127.0.0.1/x"}, format="json")
    assert response.status_code == 400
    assert Webhook.objects.get().url == receiver.url


# --- deliveries ----------------------------------------------------------------------


def test_an_alert_is_delivered_signed_retried_after_a_failure_and_logged(
    world, users, api, billed, receiver, django_capture_on_commit_callbacks
):
    secret = create(api, users["manager_a"], "reseller-a", receiver.url).json()["secret"]
    receiver.statuses = [500]
    raise_alerts(django_capture_on_commit_callbacks)
    [event] = WebhookEvent.objects.all()
    [delivery] = WebhookDelivery.objects.all()
    assert OrmQ.objects.count() >= 1  # the first try waits for a worker, not the request
    assert deliver(delivery.pk) == "failed (500)"
    delivery.refresh_from_db()
    wait = delivery.next_attempt_at - timezone.now()
    assert delivery.state == "pending" and timedelta(seconds=14) < wait <= timedelta(seconds=24)
    assert Schedule.objects.filter(name__startswith=f"webhook-retry-{delivery.pk}-").exists()
    assert deliver(delivery.pk) == "not due"  # not before its time
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    assert deliver_due() == 1
    delivery.refresh_from_db()
    assert delivery.state == "delivered" and delivery.attempts == 2

    first, second = receiver.requests
    assert first["body"] == second["body"]  # the same bytes on every try
    for request in receiver.requests:
        assert request["headers"]["Usage-Portal-Event"] == "alert.raised"
        header = request["headers"]["Usage-Portal-Signature"]
        assert verify(secret, header, request["body"], now=int(time.time()))
        assert not verify("whsec_wrong", header, request["body"], now=int(time.time()))
        assert not verify(secret, header, request["body"], now=int(time.time()) + 3600)
    payload = json.loads(first["body"])
    assert set(payload) == {"id", "type", "created", "tenant", "data"}
    assert (payload["id"], payload["type"], payload["tenant"]) == (
        event.id,
        "alert.raised",
        "org-a",
    )
    alert = UsageAlert.objects.get()
    assert payload["data"]["alert"]["id"] == alert.pk
    assert (
        api(users["manager_a"]).get(f"/api/v1/alerts/{alert.pk}/").json()
        == payload["data"]["alert"]
    )

    log = api(users["manager_a"]).get(f"{HOOKS}{Webhook.objects.get().pk}/deliveries/").json()
    rows = log["results"]
    assert [(r["attempt"], r["status_code"], r["event_id"], r["type"]) for r in rows] == [
        (2, 200, event.id, "alert.raised"), (1, 500, event.id, "alert.raised"),
    ]  # fmt: skip
    assert rows[1]["next_attempt_at"] is not None and rows[0]["next_attempt_at"] is None
    assert all(r["duration_ms"] >= 0 and r["created"] for r in rows)
    assert len(delivery.tries.get(attempt=1).response_excerpt) == 300  # not the whole answer


def test_events_reach_only_webhooks_above_the_tenant(
    world, users, api, billed, receiver, django_capture_on_commit_callbacks
):
    for user, tenant in (("manager_a", "reseller-a"), ("manager_b", "reseller-b"),
                         ("partner", "partner-p")):  # fmt: skip
        assert create(api, users[user], tenant, receiver.url).status_code == 201
    raise_alerts(django_capture_on_commit_callbacks)
    reached = sorted(WebhookDelivery.objects.values_list("webhook__tenant__slug", flat=True))
    assert reached == ["partner-p", "reseller-a"]  # org-a's alert; reseller-b hears nothing


def test_webhooks_only_hear_the_types_they_asked_for(
    world, users, api, billed, receiver, django_capture_on_commit_callbacks
):
    create(api, users["manager_a"], "reseller-a", receiver.url, events=["statement.finalized"])
    raise_alerts(django_capture_on_commit_callbacks)
    assert not WebhookEvent.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        statement = refresh_statement(world.org_a, billed, final=True)
    event = WebhookEvent.objects.get()
    body = json.loads(event.body)
    assert (body["type"], body["tenant"]) == ("statement.finalized", "org-a")
    api_statement = api(users["manager_a"]).get(f"/api/v1/statements/{statement.pk}/").json()
    assert body["data"]["statement"] == api_statement


def test_a_blocking_item_reaching_its_limit_sends_entitlement_blocked_once(
    world, users, api, report_usage, receiver, django_capture_on_commit_callbacks
):
    create(api, users["manager_a"], "reseller-a", receiver.url, events=["entitlement.blocked"])
    plan = Plan.objects.create(code="capped", name="Capped", owner=world.reseller_a)
    meter = Meter.objects.get(code="call_minutes")
    PlanItem.objects.create(
        plan=plan, meter=meter, limit=D("10"), overage_policy="block", thresholds=[100, 150]
    )
    subscribe(tenant=world.org_a, plan=plan, starts_on=month_of(timezone.now().date()))
    raise_alerts(django_capture_on_commit_callbacks)
    assert UsageAlert.objects.count() == 2  # 16.25 used of 10: past 100 % and 150 %
    body = json.loads(WebhookEvent.objects.get().body)
    assert body["type"] == "entitlement.blocked"
    assert body["data"]["entitlement"] | {"used": None} == {
        "tenant": "org-a", "meter": "call_minutes", "plan": "capped", "dimension": None,
        "limit": "10.000000", "used": None, "period": f"{timezone.now():%Y-%m}", "allowed": False,
    }  # fmt: skip


def test_an_address_turned_private_is_refused_at_delivery(
    world, users, api, billed, receiver, settings, django_capture_on_commit_callbacks
):
    create(api, users["manager_a"], "reseller-a", receiver.url)
    settings.USAGE_WEBHOOK_ALLOW_PRIVATE = False  # as if DNS now answered a private address
    raise_alerts(django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()
    assert "private, loopback or reserved" in deliver(delivery.pk)
    assert receiver.requests == []
    assert delivery.tries.get().status_code is None


def test_three_days_of_failures_disable_the_webhook_and_tell_its_managers(
    world, users, api, billed, receiver, django_capture_on_commit_callbacks
):
    users["manager_a"].email = "alice@example.com"
    users["manager_a"].save()
    create(api, users["manager_a"], "reseller-a", receiver.url)
    raise_alerts(django_capture_on_commit_callbacks)
    receiver.statuses = [503, 503]
    [delivery] = WebhookDelivery.objects.all()
    deliver(delivery.pk)
    webhook = Webhook.objects.get()
    assert webhook.is_active and webhook.failing_since is not None
    Webhook.objects.update(failing_since=timezone.now() - timedelta(days=3, minutes=1))
    WebhookDelivery.objects.update(next_attempt_at=timezone.now())
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        deliver(delivery.pk)
    webhook.refresh_from_db()
    delivery.refresh_from_db()
    assert not webhook.is_active and "3 days" in webhook.disabled_reason
    assert delivery.state == "cancelled"
    [message] = mail.outbox
    assert message.to == ["alice@example.com"] and "Webhook disabled" in message.subject
    # Enabled again, its clock starts over.
    url = f"{HOOKS}{webhook.pk}/"
    assert api(users["manager_a"]).patch(url, {"is_active": True}, format="json").status_code == 200
    webhook.refresh_from_db()
    assert webhook.is_active and webhook.failing_since is None and webhook.disabled_reason == ""


def test_send_again_queues_one_more_try(
    world, users, api, billed, receiver, django_capture_on_commit_callbacks
):
    hook = create(api, users["manager_a"], "reseller-a", receiver.url).json()
    raise_alerts(django_capture_on_commit_callbacks)
    [delivery] = WebhookDelivery.objects.all()
    deliver(delivery.pk)
    attempt = delivery.tries.get()
    queued = OrmQ.objects.count()
    url = f"{HOOKS}{hook['id']}/deliveries/{attempt.pk}/resend/"
    with django_capture_on_commit_callbacks(execute=True):
        response = api(users["manager_a"]).post(url)
    assert response.status_code == 202 and OrmQ.objects.count() == queued + 1
    assert deliver(delivery.pk) == "delivered"
    assert len(receiver.requests) == 2
    assert api(users["manager_b"]).post(url).status_code == 404


def test_retries_back_off_over_a_day():
    import random

    rng = random.Random(7)
    assert MAX_ATTEMPTS >= 6
    assert retry_delay(1, rng) <= timedelta(seconds=60)  # the first retry within a minute
    lows = [retry_delay(n, random.Random(0)) for n in range(1, MAX_ATTEMPTS)]
    assert all(later > earlier for earlier, later in zip(lows, lows[1:], strict=False))
    assert sum(RETRY_DELAYS, timedelta()) >= timedelta(hours=24)
    spread = {retry_delay(3, rng) for _ in range(20)}
    assert len(spread) > 1 and all(
        timedelta(minutes=8) <= d <= timedelta(minutes=12) for d in spread
    )  # jitter within ±20 %


def test_the_sweeper_is_scheduled_every_minute(db):
    schedule = Schedule.objects.get(name="webhook-deliveries")
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == (
        "webhooks.delivery.deliver_due", Schedule.MINUTES, 1,
    )  # fmt: skip


def test_a_webhook_of_an_organization_hears_its_own_tenants(
    world, users, api, billed, receiver, django_capture_on_commit_callbacks
):
    make_user("oona", world.org_a, "manager")
    from django.contrib.auth import get_user_model

    oona = get_user_model().objects.get(username="oona")
    assert create(api, oona, "org-a", receiver.url).status_code == 201
    raise_alerts(django_capture_on_commit_callbacks)
    assert WebhookDelivery.objects.get().webhook.tenant == world.org_a


def test_the_admin_adds_a_webhook_for_a_managed_tenant_and_shows_the_secret_once(
    world, users, login, receiver
):
    client = login(users["manager_a"])
    form = client.get("/admin/webhooks/webhook/add/")
    choices = {str(t) for t in form.context["adminform"].form.fields["tenant"].queryset}
    assert choices == {"Reseller A", "Org A", "Agent A"}  # managed, never Reseller B's
    response = client.post(
        "/admin/webhooks/webhook/add/",
        {"tenant": world.reseller_a.pk, "url": receiver.url, "events": ["alert.raised"],
         "is_active": "on"},
        follow=True,
    )  # fmt: skip
    webhook = Webhook.objects.get()
    assert webhook.secret in response.content.decode()
    assert (
        webhook.secret
        not in client.get(f"/admin/webhooks/webhook/{webhook.pk}/change/").content.decode()
    )
    other = login(users["manager_b"])
    assert other.get(f"/admin/webhooks/webhook/{webhook.pk}/change/").status_code in (302, 404)
    assert "127.0.0.1" not in other.get("/admin/webhooks/webhook/").content.decode()
