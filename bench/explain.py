"""Query plans of the two hottest reads, on PostgreSQL: the partner-level usage summary
(every SQL statement `usage_summary` runs) and the first page of the records page.

    DATABASE_URL=postgres://… python bench/explain.py [--tenant SLUG]

Run it against a database holding the demo (`manage.py seed_demo`); it prints
`EXPLAIN (ANALYZE, BUFFERS)` for each statement.
"""

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "usage_portal.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from accounts.models import Tenant, subtrees_q  # noqa: E402
from billing.usage import usage_summary  # noqa: E402
from metering.models import UsageEvent  # noqa: E402


def explain(sql: str, params) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def captured_selects(run) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        run()
    return [
        q["sql"]
        for q in captured.captured_queries
        if q["sql"].lstrip().startswith(("SELECT", "WITH"))
    ]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenant", default="northwind-channel-partners")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        raise SystemExit("Point DATABASE_URL at PostgreSQL.")
    tenant = Tenant.objects.get(slug=args.tenant)
    today = datetime.now(UTC).date()
    start = today.replace(day=1)

    print(f"# usage_summary({tenant.slug}, {start}, {today}, group_by='child')\n")
    # Literal SQL as the server saw it: re-run each statement under EXPLAIN.
    statements = captured_selects(lambda: usage_summary(tenant, start, today, "child"))
    for number, sql in enumerate(statements, start=1):
        if "django_q" in sql or "auth_" in sql:
            continue
        print(f"## statement {number}\n{sql[:600]}{'…' if len(sql) > 600 else ''}\n")
        print(explain(sql, None), "\n")

    print("# records page, first 100 rows\n")
    events = (
        UsageEvent.objects.filter(subtrees_q([tenant], "tenant__"))
        .select_related("tenant", "meter")
        .order_by("-occurred_at", "-id")[:100]
    )
    sql, params = events.query.sql_with_params()
    print(explain(sql, params))


if __name__ == "__main__":
    main()
