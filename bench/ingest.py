"""Ingestion speed: HTTP batches through gunicorn against the database's own bulk load.

    python bench/ingest.py [--events 200000] [--batch 1000] [--clients 4]
                           [--workers 2] [--threads 1] [--rounds 2]

Builds a fresh database (`DATABASE_URL`, default a SQLite file under /tmp) with the
bench tree (667 tenants), an API key with the ingest scope, and starts gunicorn on
it. Each round then times, over the same number of events:

- HTTP: `--clients` clients POST `--batch`-event batches to /api/v1/events/ with
  the key, back to back (bodies encoded before the clock starts: the clients stand
  for other machines); events/s over the wall time, p50/p95 batch latency;
- raw: the same rows written straight into a table with the event table's
  columns, indexes and foreign keys, in transactions of `--batch` rows: `executemany` on
  SQLite, `COPY` on PostgreSQL (the fastest way each database takes rows).

Prints both and their ratio. Target: HTTP / raw >= 0.5 on SQLite and PostgreSQL.
Throttles are lifted for the run (USAGE_THROTTLE_INGEST): they protect the portal
from a client, they are not what is measured.
"""

import argparse
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from statistics import median

from benchdata import ROOT, build_tree, database_version, fresh_database, machine, percentile
from django.db import connection

from accounts.models import ApiKey, Tenant
from metering.models import UsageEvent

TREE = {"resellers": 6, "orgs_per_reseller": 10, "agents_per_org": 10}
METERS = [
    ("call_minutes", "direction", ("inbound", "outbound")),
    ("chat_sessions", "channel", ("web", "sms")),
    ("emails", "direction", ("inbound", "outbound")),
    ("processing_units", "activity", ("transcription", "ocr", "summarization")),
]
RAW_TABLE = "bench_raw_events"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="events per round and side")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=1, help="threads per gunicorn worker")
    parser.add_argument("--rounds", type=int, default=2)
    return parser.parse_args()


def make_key(tenant: Tenant) -> str:
    api_key = ApiKey(name="bench ingest", tenant=tenant, scopes=[ApiKey.Scope.INGEST])
    key = ApiKey.objects.assign_key(api_key)
    api_key.save()
    return key


def batches(count: int, size: int, agents: list[str], round_no: int) -> list[list[dict]]:
    """`count` events in batches, unique ids per round, times within the last day."""
    rng = random.Random(round_no)
    now = datetime.now(UTC)
    events = []
    for n in range(count):
        meter, attribute, values = METERS[n % len(METERS)]
        at = now - timedelta(seconds=rng.randrange(86_400))
        events.append({
            "event_id": f"bench-{round_no}-{n}", "tenant": rng.choice(agents), "meter": meter,
            "quantity": f"{rng.uniform(0.5, 12):.2f}",
            "timestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "attributes": {attribute: rng.choice(values)},
        })  # fmt: skip
    return [events[i : i + size] for i in range(0, count, size)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(workers: int, threads: int) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**os.environ, "USAGE_THROTTLE_INGEST": "1000000/min", "DJANGO_HTTPS": "0",
           "DJANGO_LOG_LEVEL": "WARNING"}  # fmt: skip
    command = [sys.executable, "-m", "gunicorn", "usage_portal.wsgi:application",
               "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
               "--threads", str(threads), "--timeout", "120"]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return process, port
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit("gunicorn did not come up")


def post_all(port: int, key: str, bodies: list[bytes], clients: int) -> tuple[float, list]:
    """Send every body once, `clients` at a time; returns (seconds, batch latencies)."""
    latencies, queue, lock, failures = [], list(reversed(bodies)), threading.Lock(), []
    headers = {"Authorization": f"Api-Key {key}", "Content-Type": "application/json"}

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                if not queue:
                    break
                body = queue.pop()
            sent = time.perf_counter()
            conn.request("POST", "/api/v1/events/", body=body, headers=headers)
            response = conn.getresponse()
            answer = response.read()
            latencies.append(time.perf_counter() - sent)
            if response.status != 201:
                failures.append((response.status, answer[:200]))
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{len(failures)} batches failed, e.g. {failures[0]}")
    return seconds, latencies


def create_raw_table() -> None:
    """A table with the event table's columns, indexes and foreign keys, emptied."""
    table = UsageEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {RAW_TABLE}")
        if connection.vendor == "postgresql":
            cursor.execute(f"CREATE TABLE {RAW_TABLE} (LIKE {table} INCLUDING ALL)")
            # LIKE leaves the foreign keys behind, and their checks are part of what
            # the database does for each row of the event table (the SQLite copy
            # below keeps its REFERENCES clauses).
            cursor.execute(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = %s::regclass AND contype = 'f'",
                [table],
            )
            for (definition,) in cursor.fetchall():
                cursor.execute(f"ALTER TABLE {RAW_TABLE} ADD {definition}")
            return
        cursor.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = %s", [table])
        cursor.execute(cursor.fetchone()[0].replace(f'"{table}"', RAW_TABLE, 1))
        cursor.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = %s "
            "AND sql IS NOT NULL",
            [table],
        )
        for (sql,) in cursor.fetchall():
            cursor.execute(
                sql.replace(f'"{table}"', RAW_TABLE).replace(' INDEX "', ' INDEX "bench_raw_', 1)
            )


def raw_rows(all_batches, tenant_ids: dict, meter_ids: dict) -> list[list[tuple]]:
    received = datetime.now(UTC).isoformat(sep=" ")
    return [
        [
            (e["event_id"], tenant_ids[e["tenant"]], meter_ids[e["meter"]], e["quantity"],
             e["timestamp"].replace("T", " ").replace("Z", "+00:00"), received, "api",
             next(iter(e["attributes"].values())), json.dumps(e["attributes"]))
            for e in batch
        ]
        for batch in all_batches
    ]  # fmt: skip


COLUMNS = ("event_id", "tenant_id", "meter_id", "quantity", "occurred_at", "received_at",
           "source", "dimension", "attributes")  # fmt: skip


def raw_load(row_batches: list[list[tuple]]) -> float:
    """Write the rows in transactions of one batch each; returns seconds."""
    create_raw_table()
    names = ", ".join(COLUMNS)
    raw = connection.connection  # the driver's own connection: nothing of Django's
    started = time.perf_counter()
    if connection.vendor == "postgresql":
        for rows in row_batches:
            sql = f"COPY {RAW_TABLE} ({names}) FROM STDIN"
            with raw.cursor() as cursor, cursor.copy(sql) as copy:
                for row in rows:
                    copy.write_row(row)
            raw.commit()
    else:
        insert = f"INSERT INTO {RAW_TABLE} ({names}) VALUES ({', '.join('?' * len(COLUMNS))})"
        for rows in row_batches:
            raw.execute("BEGIN IMMEDIATE")
            raw.executemany(insert, rows)
            raw.execute("COMMIT")
    return time.perf_counter() - started


def drop_raw_table() -> None:
    """The copy references the tenants and meters: it goes before they are flushed."""
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {RAW_TABLE}")


def main():
    args = parse_args()
    print(f"machine: {machine()}, {database_version()}")
    drop_raw_table()
    fresh_database()
    build_tree(**TREE)
    agents = list(Tenant.objects.filter(kind="agent").values_list("slug", flat=True))
    tenant_ids = dict(Tenant.objects.values_list("slug", "pk"))
    from metering.models import Meter

    meter_ids = dict(Meter.objects.values_list("code", "pk"))
    key = make_key(Tenant.objects.get(slug="bench-partner"))
    connection.ensure_connection()
    if connection.vendor == "sqlite":
        connection.connection.isolation_level = None  # explicit BEGIN/COMMIT below
    server, port = start_gunicorn(args.workers, args.threads)
    print(
        f"{args.events:,} events per side and round, batches of {args.batch}, "
        f"{args.clients} clients, gunicorn {args.workers} workers x {args.threads} threads"
    )
    ratios = []
    try:
        for round_no in range(1, args.rounds + 1):
            all_batches = batches(args.events, args.batch, agents, round_no)
            bodies = [json.dumps({"events": batch}).encode() for batch in all_batches]
            http_seconds, latencies = post_all(port, key, bodies, args.clients)
            stored = UsageEvent.objects.filter(event_id__startswith=f"bench-{round_no}-").count()
            assert stored == args.events, (stored, args.events)
            raw_seconds = raw_load(raw_rows(all_batches, tenant_ids, meter_ids))
            http_rate, raw_rate = args.events / http_seconds, args.events / raw_seconds
            ratios.append(http_rate / raw_rate)
            print(
                f"round {round_no}: HTTP {http_rate:,.0f} events/s (batch p50 "
                f"{median(latencies) * 1000:.0f} ms, p95 {percentile(latencies, 95) * 1000:.0f} "
                f"ms); raw {raw_rate:,.0f} rows/s; ratio {ratios[-1]:.2f}"
            )
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
        drop_raw_table()
    print(f"ratio HTTP / raw: median {median(ratios):.2f} (target >= 0.5)")


if __name__ == "__main__":
    main()
