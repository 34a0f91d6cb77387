"""Report page speed: the partner-level consumption page over the full demo data.

    DATABASE_URL=sqlite:////tmp/reports_bench.sqlite3 python manage.py migrate
    DATABASE_URL=sqlite:////tmp/reports_bench.sqlite3 python manage.py seed_demo
    DATABASE_URL=sqlite:////tmp/reports_bench.sqlite3 python manage.py rollup --all
    DATABASE_URL=sqlite:////tmp/reports_bench.sqlite3 python bench/report_page.py [--repeat 15]

Server time is the whole request inside Django (scoping, form, the usage
summaries, tables and template), measured through the test client, so no
network or browser time is in the figure. The demo data is generated with a
fixed seed (metering.demo.SEED); this script adds nothing and changes nothing.
Target: p95 <= 300 ms for the partner page, every category tab.
"""

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "usage_portal.settings")
os.environ.setdefault("DJANGO_LOG_LEVEL", "WARNING")
if "DATABASE_URL" not in os.environ:
    sys.exit("Set DATABASE_URL to the demo database (see the docstring).")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection, reset_queries  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

from accounts.models import Tenant  # noqa: E402
from accounts.selectors import top_tenants  # noqa: E402
from metering.models import Meter, UsageEvent  # noqa: E402


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))]


def timed_get(client: Client, url: str, repeat: int) -> tuple[list[float], int]:
    """Milliseconds per request after one warm-up, and the queries of one request."""
    settings.DEBUG = True  # count queries
    reset_queries()
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    if response.streaming:
        b"".join(response.streaming_content)
    queries = len(connection.queries)
    settings.DEBUG = False
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url)
        if response.streaming:
            b"".join(response.streaming_content)
        timings.append((time.perf_counter() - started) * 1000)
    return timings, queries


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    # No setup_test_environment(): its template instrumentation copies every
    # context on render and would add a third to the page time.
    settings.ALLOWED_HOSTS = ["testserver"]
    settings.SECURE_SSL_REDIRECT = False
    # Static URLs from the source files, so no collectstatic manifest is needed.
    override_settings(
        STORAGES={
            **settings.STORAGES,
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        }
    ).enable()
    user = get_user_model().objects.get(username="partner")
    partner = top_tenants(user)[0]
    client = Client()
    client.force_login(user)
    print(f"{connection.vendor}, {UsageEvent.objects.count():,} events, "
          f"{Tenant.objects.count():,} tenants; partner {partner.slug} with "
          f"{partner.get_children().count()} children, "
          f"{partner.get_descendant_count()} tenants below")  # fmt: skip
    base = f"/reports/t/{partner.slug}/"
    urls = [(f"page {c}", f"{base}?category={c}") for c, _ in Meter.Category.choices]
    urls += [
        ("page last 30 days", f"{base}?category=communications&period=last_30_days"),
        ("page stacked by dimension", f"{base}?category=processing&stack=dimension"),
        ("page active users charted", f"{base}?category=licenses&meter=active_users"),
        ("chart JSON", f"{base}chart/?category=communications&meter=call_minutes"),
        ("children CSV", f"{base}csv/?category=communications&table=children"),
        ("records page", f"{base}records/"),
    ]
    print(f"{'request':<28} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'queries':>8}")
    worst = 0.0
    for label, url in urls:
        timings, queries = timed_get(client, url, args.repeat)
        p95 = percentile(timings, 95)
        if label.startswith("page") and "active users" not in label:
            worst = max(worst, p95)
        print(f"{label:<28} {percentile(timings, 50):>8.1f} {p95:>8.1f} "
              f"{max(timings):>8.1f} {queries:>8}")  # fmt: skip
    print(f"worst p95 of the pages as opened (active users not asked for): {worst:.1f} ms "
          "(target <= 300 ms)")  # fmt: skip


if __name__ == "__main__":
    main()
