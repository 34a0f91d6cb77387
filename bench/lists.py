"""List speed: every admin changelist and every API list over a large event table.

    python bench/lists.py [--events 10000000] [--repeat 5] [--reuse]

Loads N events into the demo-shaped tree (1 partner, 6 resellers, 60
organizations, 600 agents; 45 days, the formula of `benchdata`), rolls them up,
and adds the demo's plans, subscriptions, statements and alerts (`billing.demo`).
`--reuse` keeps a database that already holds exactly N bench events and its
billing rows.

Then, as a superuser and as a reseller's manager (the test client through the
real URL conf and middleware), it times every admin changelist of the registry —
the first page in its default order, the first choice of each of its list
filters (every choice of a meter or category filter), and a search when it has
search fields — and every list route under /api/v1/ the URL resolver knows, with
its required parameters and a typical filter (every meter and category where the
route filters by them). Each request is asked once to warm up and count its queries, then
`--repeat` times (once when the warm-up took over ten times the target); the
table prints p50, p95 and the number of timed requests, slowest first.

Target: every list answers in under 0.5 s (p95).
"""

import argparse
import os
import time
import warnings
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

# Before Django reads its settings (benchdata sets Django up): the bench asks far
# more often than the read throttle allows a person, and alerts mail nobody.
os.environ.setdefault("USAGE_THROTTLE_READ", "1000000/min")
os.environ.setdefault("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")

from benchdata import build_tree, fresh_database, load_events, machine, percentile
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection, reset_queries
from django.test import Client, RequestFactory
from django.test.utils import override_settings
from django.urls import URLResolver, get_resolver, reverse

from accounts.models import Membership, Tenant
from billing.demo import load_demo_billing
from billing.models import DailyUsage, Statement
from billing.usage.rollup import run_rollup
from billing.usage.runs import all_event_days
from metering.models import Meter, UsageEvent

TREE = {"resellers": 6, "orgs_per_reseller": 10, "agents_per_org": 10}
TARGET_MS = 500
RESELLER = "r0"
ORGANIZATION = "r0-o1"
# What a person types into an admin search box: a tenant slug.
SEARCH = ORGANIZATION
# API routes that are not lists of anything (the same reasons as the route isolation test).
NOT_LISTS = {"api:root", "api:auth-token"}
# Admin list filters (field path, or a simple filter's parameter) timed at every
# choice, not only the first: a meter's share of the events, a sixth of the table or
# none, decides a filtered list's plan, and a meter nobody sends once made
# PostgreSQL read every event (58 s at 10M; docs/benchmarks.md, "On PostgreSQL").
METER_FILTERS = {"meter", "meter__category", "category"}


def meter_filters() -> list[dict]:
    """Every meter of the catalog, then every category, as query parameters: the
    same reason as METER_FILTERS, for the API."""
    codes = Meter.objects.order_by("code").values_list("code", flat=True)
    return [{"meter": code} for code in codes] + [
        {"category": category} for category in Meter.Category.values
    ]


def api_params(month: str) -> dict[str, list[dict]]:
    """Query parameters per API route: the required ones, then typical filters. A
    route missing here is asked bare; one that then answers 400 stops the bench."""
    by_meter = meter_filters()
    return {
        "api:tenant-list": [{}, {"kind": "agent"}],
        "api:event-list": [{}, {"tenant": ORGANIZATION}, *by_meter],
        "api:usage": [
            {"tenant": RESELLER},
            {"tenant": RESELLER, "group_by": "day"},
            *({"tenant": RESELLER, **query} for query in by_meter),
        ],
        "api:meter-list": [{}],
        "api:plan-list": [{}, {"owner": RESELLER}],
        "api:subscription-list": [{}, {"tenant": ORGANIZATION}],
        "api:statement-list": [{}, {"within": RESELLER}, {"period": month}],
        "api:margin": [{"tenant": RESELLER}],
        "api:alert-list": [{}, {"tenant": RESELLER}],
        # Its meter is required, not a filter, but it is answered from that meter's usage.
        "api:entitlements": [
            {"tenant": ORGANIZATION, **query} for query in by_meter if "meter" in query
        ],
    }


def idle_meters() -> list[str]:
    """Meters without a single event (the bench's events use six of the catalog's):
    the filter choices that must answer at once however large the table."""
    return [meter.code for meter in Meter.objects.order_by("code") if not meter.events.exists()]


def loaded(events: int) -> bool:
    """The database holds this benchmark's tree, exactly `events` events, and billing rows."""
    agents = TREE["resellers"] * TREE["orgs_per_reseller"] * TREE["agents_per_org"]
    return (
        Tenant.objects.filter(slug="bench-partner").exists()
        and Tenant.objects.filter(kind="agent").count() == agents
        and UsageEvent.objects.filter(event_id__startswith="b-").count() == events
        and DailyUsage.objects.exists()
        and Statement.objects.exists()
    )


def load(events: int) -> None:
    started = time.monotonic()
    fresh_database()
    agents = build_tree(**TREE)
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    seconds = load_events(events, agents, end)
    print(f"events: {events:,} inserted and indexed in {seconds:.1f} s", flush=True)
    rolled = time.monotonic()
    run_rollup(days=all_event_days(), grace=timedelta(0))
    print(f"rollup: {time.monotonic() - rolled:.1f} s", flush=True)
    billing = load_demo_billing(datetime.now(UTC).date())
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(f"billing: {billing}; set-up {time.monotonic() - started:.1f} s", flush=True)


def bench_users():
    """A platform operator and the manager of one reseller (1/6 of the tree)."""
    users = get_user_model().objects
    operator, _ = users.get_or_create(
        username="bench-operator", defaults={"is_staff": True, "is_superuser": True}
    )
    manager, _ = users.get_or_create(username="bench-reseller", defaults={"is_staff": True})
    Membership.objects.get_or_create(
        user=manager, tenant=Tenant.objects.get(slug=RESELLER), defaults={"role": "manager"}
    )
    return {"operator": operator, "reseller": manager}


def get(client: Client, url: str):
    response = client.get(url)
    if response.streaming:
        b"".join(response.streaming_content)
    return response


def timed(client: Client, url: str, repeat: int) -> tuple[list[float], int] | None:
    """Milliseconds per request after one warm-up, and the queries of one request;
    None when the page is refused to this user (an operator's page). A request
    slower than ten times the target is timed once."""
    settings.DEBUG = True  # count queries
    reset_queries()
    started = time.perf_counter()
    response = get(client, url)
    warm_up = time.perf_counter() - started
    queries = len(connection.queries)
    settings.DEBUG = False
    if response.status_code == 403:
        return None
    if response.status_code != 200:
        raise SystemExit(f"{url} answered {response.status_code}")
    timings = []
    for _ in range(1 if warm_up * 1000 > 10 * TARGET_MS else repeat):
        started = time.perf_counter()
        get(client, url)
        timings.append((time.perf_counter() - started) * 1000)
    return timings, queries


def filter_choices(spec, changelist) -> list[dict]:
    """The choices of one list filter to time: every one of a meter or category
    filter (METER_FILTERS), the first of any other."""
    path = getattr(spec, "field_path", None) or getattr(spec, "parameter_name", "")
    choices = [c for c in spec.choices(changelist) if not c["selected"]]
    return choices if path in METER_FILTERS else choices[:1]


def admin_pages(user):
    """(label, url) of each changelist: first page, the first choice of each list
    filter (every choice of a meter or category filter), a search. Read from the
    changelist's own filters."""
    registry = sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)
    for model, model_admin in registry:
        opts = model._meta
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        label = f"admin {opts.label}"
        yield f"{label}: first page", url
        request = RequestFactory().get(url)
        request.user = user
        changelist = model_admin.get_changelist_instance(request)
        for spec in changelist.filter_specs:
            for choice in filter_choices(spec, changelist):
                yield f"{label}: {spec.title} = {choice['display']}", url + choice["query_string"]
        if model_admin.search_fields:
            yield f"{label}: search {SEARCH!r}", f"{url}?{urlencode({'q': SEARCH})}"


def api_routes(patterns=None, prefix: str = "", namespace: str | None = None):
    """(name, path) of every route under /api/v1/ without URL keys."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            inner = ":".join(filter(None, [namespace, pattern.namespace])) or None
            yield from api_routes(pattern.url_patterns, prefix + str(pattern.pattern), inner)
        elif prefix.startswith("api/v1/") and not pattern.pattern.regex.groupindex:
            name = f"{namespace}:{pattern.name}"
            if name not in NOT_LISTS:
                yield name, reverse(name)


def api_pages():
    month = f"{datetime.now(UTC).date().replace(day=1) - timedelta(days=1):%Y-%m}"
    params = api_params(month)
    for name, path in api_routes():
        for query in params.get(name, [{}]):
            shown = " ".join(f"{k}={v}" for k, v in query.items())
            url = f"{path}?{urlencode(query)}" if query else path
            yield f"api {path.removeprefix('/api/v1/')} {shown}".rstrip(), url


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--reuse", action="store_true", help="keep the events already loaded if they match"
    )
    args = parser.parse_args()
    print(f"machine: {machine()}", flush=True)
    if args.reuse and loaded(args.events):
        call_command("migrate", verbosity=0)  # this code's indexes
        print(f"events: {args.events:,} already loaded, reused", flush=True)
    else:
        load(args.events)
    warnings.filterwarnings("ignore", "No directory at")  # static files come from the source
    # No setup_test_environment(): its template instrumentation would add to each page.
    settings.ALLOWED_HOSTS = ["testserver"]
    settings.SECURE_SSL_REDIRECT = False
    override_settings(
        STORAGES={
            **settings.STORAGES,
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        }
    ).enable()
    print(f"{connection.vendor}: {UsageEvent.objects.count():,} events, "
          f"{DailyUsage.objects.count():,} billing rows, {Statement.objects.count():,} "
          f"statements, {Tenant.objects.count():,} tenants; {args.repeat} timed requests "
          "each after a warm-up", flush=True)  # fmt: skip
    idle = idle_meters()
    if not idle:
        raise SystemExit("every meter has events: no filter choice would time one without")
    print(f"meters without events, in every meter filter: {', '.join(idle)}", flush=True)
    results = []
    for who, user in bench_users().items():
        client = Client()
        client.force_login(user)
        for label, url in [*admin_pages(user), *api_pages()]:
            measured = timed(client, url, args.repeat)
            if measured is None:
                continue  # an operator's page, refused to the reseller
            timings, queries = measured
            p95, p50 = percentile(timings, 95), percentile(timings, 50)
            results.append((p95, p50, len(timings), queries, who, label))
            print(f"  {who:<8} {label:<64} p95 {p95:9.1f} ms", flush=True)
    results.sort(reverse=True)
    print(f"\n{'p95 ms':>9} {'p50 ms':>9} {'n':>2} {'queries':>7}  {'user':<8} request")
    for p95, p50, n, queries, who, label in results:
        print(f"{p95:9.1f} {p50:9.1f} {n:2} {queries:7}  {who:<8} {label}")
    over = [r for r in results if r[0] >= TARGET_MS]
    slowest = results[0]
    print(f"slowest: {slowest[5]} ({slowest[4]}), p95 {slowest[0]:.1f} ms; {len(over)} of "
          f"{len(results)} requests at or over the target ({TARGET_MS} ms p95)")  # fmt: skip


if __name__ == "__main__":
    main()
