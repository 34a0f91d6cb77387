"""Load: ingestion and reporting at once, on PostgreSQL with the Redis broker.

    python bench/load.py [--seconds 60] [--baseline-seconds 20] [--clients 4]
                         [--readers 2] [--read-pause 0.5] [--batch 500]
                         [--batches-per-second 1] [--ingest-pool]
                         [--rollup-minutes 1] [--compact-events N] [--nice 0]
                         [--windows 6] [--in-step]

Creates a fresh database (`--database-url`, default a local PostgreSQL), loads the
demo tree with a few days of usage, and starts two gunicorn workers (with
`--ingest-pool`: one for reads, one for the ingestion endpoint) and a task cluster
of two workers (rollup every `--rollup-minutes`; compactions as the portal sets
them) against it and Redis. Readers ask the partner report page and the usage
API, first alone (baseline), then while `--clients` clients ingest batches with
unique event ids (resending a batch unchanged after any failure). Afterwards
every accepted event must be counted exactly once in the usage totals, before
and after a final rollup.

Prints events/s, errors, lost and double-counted events, the machine's CPU use,
and the read p95 with and without ingestion. Readers pause between requests
(`--read-pause`, people reading pages); `--read-pause 0` asks back to back, which
alone keeps every core busy, so the ratio then measures how ingestion's share of
the CPU queues the reads. Targets: 0 errors, 0 lost, 0 double-counted; read p95
under ingestion <= 1.2x the baseline. `--batches-per-second 0` ingests as fast
as the clients can.

`--windows N` (default 6) alternates reading alone and under ingestion N times
(each phase's total length unchanged): on a shared machine whose speed drifts by
tens of percent within minutes, both phases then see the same conditions, and
the ratio compares like with like; `--windows 1` reads alone for the whole
baseline, then under ingestion for the whole run, as the first rounds did. The
windows after the first start with a tail of up to USAGE_COMPACT_EVENTS events
left by the previous ingestion window, as any quiet moment in production does.

Each client sends a batch every 1/--batches-per-second seconds, the clients
staggered evenly over that interval (independent integrations do not send in
step; `--in-step` sends all clients' batches at the same instants instead). The
ingesting clients run in a process of their own (integrations are other
machines: their work must not hold the readers' interpreter lock). With
`--ingest-pool`, `--nice N` lowers the CPU priority of the ingestion workers and
the task cluster (default 0: the readers' priority).
"""

import argparse
import concurrent.futures
import http.cookiejar
import json
import multiprocessing
import os
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.processes import stop_group  # noqa: E402  (the same stop as the fault tests)

SEED = 20261125
METERS = {"call_minutes": "sum", "emails": "count", "chat_sessions": "count"}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:54330/usage_portal_load"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6390/3")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--baseline-seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--readers", type=int, default=2)
    parser.add_argument(
        "--read-pause", type=float, default=0.5,
        help="seconds each reader waits between requests (0: back to back, a stress test)",
    )  # fmt: skip
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--batches-per-second", type=float, default=1.0)
    parser.add_argument("--demo-days", type=int, default=3)
    parser.add_argument(
        "--web-threads", type=int, default=4, help="threads per gunicorn worker (gthread)"
    )
    parser.add_argument(
        "--compact-events", type=int, default=None,
        help="USAGE_COMPACT_EVENTS for the portal (0: no compaction; default: the portal's)",
    )  # fmt: skip
    parser.add_argument("--compact-seconds", type=int, default=None)
    parser.add_argument(
        "--rollup-minutes", type=int, default=1,
        help="USAGE_ROLLUP_INTERVAL_MINUTES (the portal's default is 1440: daily)",
    )  # fmt: skip
    parser.add_argument(
        "--ingest-pool", action="store_true",
        help="one gunicorn worker for reads, another for POST /api/v1/events/ (two in all)",
    )  # fmt: skip
    parser.add_argument(
        "--in-step", action="store_true",
        help="clients send at the same instants (a burst of --clients batches at once)",
    )  # fmt: skip
    parser.add_argument(
        "--windows", type=int, default=6,
        help="alternate reading alone and under ingestion this many times (same totals)",
    )  # fmt: skip
    parser.add_argument(
        "--nice", type=int, default=0,
        help="with --ingest-pool: CPU niceness of the ingestion workers and the task cluster",
    )  # fmt: skip
    return parser.parse_args()


def configure(args) -> dict:
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "DJANGO_HTTPS": "0",
        "DJANGO_LOG_LEVEL": "WARNING",
        "USAGE_ROLLUP_INTERVAL_MINUTES": str(args.rollup_minutes),
        "USAGE_Q_WORKERS": "2",
        "USAGE_THROTTLE_INGEST": "1000000/min",
        "USAGE_THROTTLE_READ": "1000000/min",
        "DJANGO_SETTINGS_MODULE": "usage_portal.settings",
    }
    for name, value in (("USAGE_COMPACT_EVENTS", args.compact_events),
                        ("USAGE_COMPACT_SECONDS", args.compact_seconds)):  # fmt: skip
        if value is not None:
            env[name] = str(value)
    os.environ.update(env)
    return env


def fresh_database(url: str) -> None:
    import psycopg

    parts = urllib.parse.urlparse(url)
    name = parts.path.lstrip("/")
    admin = url.replace(parts.path, "/postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(command: list[str], env: dict, nice: int = 0) -> subprocess.Popen:
    if nice:
        command = ["nice", "-n", str(nice), *command]
    return subprocess.Popen(
        command, cwd=ROOT, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def start_web(
    env: dict, *, workers: int, threads: int, nice: int = 0
) -> tuple[subprocess.Popen, str]:
    port = free_port()
    gunicorn = ["-m", "gunicorn", "usage_portal.wsgi:application", "--bind", f"127.0.0.1:{port}",
                "--workers", str(workers), "--threads", str(threads),
                "--timeout", "120"]  # fmt: skip
    return start([sys.executable, *gunicorn], env, nice), f"http://127.0.0.1:{port}"


def wait_for_first_scheduled_rollup(seconds: float = 120) -> None:
    """The schedule fires when the cluster starts: let that run (rollup, drafts,
    alerts) finish before the baseline, or it lands in whichever phase it meets."""
    from django_q.models import Success

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if Success.objects.filter(func="billing.tasks.scheduled_rollup").exists():
            return
        time.sleep(0.5)
    raise SystemExit("the scheduled rollup did not run")


def wait_until_up(base: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{base} did not come up")


def logged_in_opener(base: str, username: str, password: str):
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(f"{base}/accounts/login/").read()
    token = next(c.value for c in jar if c.name == "csrftoken")
    body = urllib.parse.urlencode(
        {"username": username, "password": password, "csrfmiddlewaretoken": token}
    ).encode()
    request = urllib.request.Request(
        f"{base}/accounts/login/", data=body, headers={"Referer": f"{base}/accounts/login/"}
    )
    opener.open(request).read()
    return opener


class Readers:
    """Threads asking the report page and the usage API in turn, timing each answer."""

    def __init__(self, base, opener, token, partner, count, pause):
        self.base, self.opener, self.token, self.partner = base, opener, token, partner
        self.count, self.pause = count, pause
        self.timings = defaultdict(list)
        self.spans = defaultdict(list)  # (phase, kind) -> (wall start, wall end) per answer
        self.errors = 0
        self.last_error = ""
        self.phase = "baseline"
        self.stopping = threading.Event()
        self.recording = threading.Lock()
        self.threads = [threading.Thread(target=self.loop, daemon=True) for _ in range(count)]

    def start(self):
        for thread in self.threads:
            thread.start()

    def stop(self):
        self.stopping.set()
        for thread in self.threads:
            thread.join()

    def loop(self):
        page = f"{self.base}/reports/t/{self.partner}/"
        api = f"{self.base}/api/v1/usage/?tenant={self.partner}&group_by=child"
        while not self.stopping.is_set():
            self.timed("page", lambda: self.opener.open(page, timeout=60).read())
            self.stopping.wait(self.pause)
            request = urllib.request.Request(api, headers={"Authorization": f"Token {self.token}"})
            self.timed("api", lambda r=request: urllib.request.urlopen(r, timeout=60).read())
            self.stopping.wait(self.pause)

    def timed(self, kind, call):
        phase, started, wall = self.phase, time.perf_counter(), time.time()
        try:
            call()
        except (urllib.error.URLError, OSError) as error:
            self.errors += 1
            self.last_error = f"{kind}: {error!r}"
            time.sleep(0.1)
            return
        elapsed_ms, ended = (time.perf_counter() - started) * 1000, time.time()
        with self.recording:  # the n-th timing and the n-th span are the same answer's
            self.timings[(phase, kind)].append(elapsed_ms)
            self.spans[(phase, kind)].append((wall, ended))


class Ingester(threading.Thread):
    """One integration: batches of unique events, resent unchanged until answered 201."""

    def __init__(self, number, base, key, agents, args, deadline):
        super().__init__(daemon=True)
        self.number, self.base, self.key, self.agents = number, base, key, agents
        self.args, self.deadline = args, deadline
        self.rng = random.Random(SEED + number)
        self.expected = defaultdict(Decimal)  # meter -> quantity accepted
        self.events = defaultdict(int)  # meter -> events accepted
        self.accepted = self.duplicates = self.errors = self.batches = 0
        self.spans = []  # (wall start, wall end) of each batch sent

    def run(self):
        pause = 1 / self.args.batches_per_second if self.args.batches_per_second else 0
        # Integrations are independent: their batches interleave instead of all
        # arriving in the same instant every `pause` seconds.
        if not self.args.in_step:
            time.sleep(pause * (self.number % self.args.clients) / self.args.clients)
        while time.monotonic() < self.deadline:
            started = time.monotonic()
            self.send(self.make_batch())
            if pause:
                now = time.monotonic()
                time.sleep(max(0.0, min(pause - (now - started), self.deadline - now)))

    def make_batch(self):
        events = []
        for n in range(self.args.batch):
            meter = self.rng.choice(list(METERS))
            quantity = f"{self.rng.uniform(0.5, 12):.2f}" if METERS[meter] == "sum" else "1"
            events.append({
                "event_id": f"load-{self.number}-{self.batches}-{n}",
                "tenant": self.rng.choice(self.agents), "meter": meter, "quantity": quantity,
            })  # fmt: skip
        self.batches += 1
        return events

    def send(self, events):
        body = json.dumps({"events": events}).encode()
        sent_at = time.time()
        while True:
            request = urllib.request.Request(
                f"{self.base}/api/v1/events/", data=body, method="POST",
                headers={"Authorization": f"Api-Key {self.key}",
                         "Content-Type": "application/json"},
            )  # fmt: skip
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    answer = json.loads(response.read())
                break
            except (urllib.error.URLError, OSError):
                self.errors += 1
                time.sleep(0.2)
        self.spans.append((sent_at, time.time()))
        self.accepted += answer["accepted"]
        self.duplicates += answer["duplicates"]
        for event in events:
            self.expected[event["meter"]] += Decimal(event["quantity"])
            self.events[event["meter"]] += 1


def alternate(args, readers, base, key, agents):
    """Reading alone, then under ingestion, `--windows` times over (the phases' total
    lengths stay --baseline-seconds and --seconds). Returns the clients' tallies,
    the seconds spent ingesting and the machine's CPU ticks per phase."""
    spawn = multiprocessing.get_context("spawn")
    clients, elapsed = [], 0.0
    cpu = {"baseline": [0, 0], "ingest": [0, 0]}

    def count_cpu(phase, before):
        after = cpu_ticks()
        cpu[phase][0] += after[0] - before[0]
        cpu[phase][1] += after[1] - before[1]

    with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as pool:
        pool.submit(time.sleep, 0).result()  # the clients' process starts before any window
        for window in range(args.windows):
            readers.phase, before = "baseline", cpu_ticks()
            time.sleep(args.baseline_seconds / args.windows)
            count_cpu("baseline", before)
            readers.phase, before = "ingest", cpu_ticks()
            started = time.monotonic()
            deadline = started + args.seconds / args.windows
            first = window * args.clients  # client numbers (and so event ids) never repeat
            work = pool.submit(run_clients, first, args.clients, base, key, agents, args, deadline)
            clients += work.result()
            elapsed += time.monotonic() - started
            count_cpu("ingest", before)
    return clients, elapsed, cpu


def run_clients(first, count, base, key, agents, args, deadline) -> list[SimpleNamespace]:
    """The ingesting clients, as threads of the process this runs in; their tallies."""
    clients = [Ingester(first + n, base, key, agents, args, deadline) for n in range(count)]
    for client in clients:
        client.start()
    for client in clients:
        client.join()
    fields = ("expected", "events", "accepted", "duplicates", "errors", "spans")
    return [SimpleNamespace(**{f: getattr(c, f) for f in fields}) for c in clients]


def task_spans() -> dict[str, list[tuple[float, float]]]:
    """(wall start, wall end) of each task the cluster ran, by task function."""
    from django_q.models import Task

    spans = defaultdict(list)
    for func, started, stopped in Task.objects.values_list("func", "started", "stopped"):
        spans[func.rsplit(".", 1)[-1]].append((started.timestamp(), stopped.timestamp()))
    return spans


def slow_read_causes(readers, clients, threshold_of) -> list[str]:
    """For the reads under ingestion slower than their baseline p95: what overlapped
    them, beside how often the same thing overlapped any read under ingestion."""
    busy = {f"task {name}": spans for name, spans in task_spans().items()}
    busy["ingest batch"] = [span for c in clients for span in c.spans]

    def met(read, spans) -> bool:
        return any(s < read[1] and read[0] < e for s, e in spans)

    lines = []
    for kind in ("page", "api"):
        reads = readers.spans[("ingest", kind)]
        threshold = threshold_of(kind)
        slow = [r for r, ms in zip(reads, readers.timings[("ingest", kind)], strict=True)
                if ms > threshold]  # fmt: skip
        if not slow:
            continue
        shares = [
            f"{name} {sum(met(r, spans) for r in slow) / len(slow):.0%} "
            f"(of all reads {sum(met(r, spans) for r in reads) / len(reads):.0%})"
            for name, spans in sorted(busy.items())
        ]
        alone = sum(not any(met(r, spans) for spans in busy.values()) for r in slow)
        lines.append(
            f"  {kind}: {len(slow)} reads above the baseline p95 ({threshold:.0f} ms); "
            f"{alone} met none of these; met {', '.join(shares)}"
        )
    return lines


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far, from /proc/stat."""
    with open("/proc/stat") as stat:
        ticks = [int(n) for n in stat.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return sum(ticks) - idle, sum(ticks)


def platform_totals(day) -> dict:
    """Usage of every top tenant (so: of everything) for `day`, per meter."""
    from accounts.models import Tenant
    from billing.usage import UsageFilters, usage_summary

    totals = defaultdict(lambda: [Decimal(0), 0])
    for root in Tenant.objects.filter(parent__isnull=True):
        summary = usage_summary(root, day, day, "meter", UsageFilters(meters=tuple(METERS)))
        for row in summary.rows:
            totals[row.meter.code][0] += row.quantity
            totals[row.meter.code][1] += row.event_count
    return totals


def percentile(values, pct):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def main():
    args = parse_args()
    env = configure(args)
    fresh_database(args.database_url)
    subprocess.run(["redis-cli", "-u", args.redis_url, "flushdb"], check=True, capture_output=True)

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    from accounts.models import ApiKey, Tenant
    from billing.models import RollupRun
    from billing.usage.rollup import run_rollup

    print("Preparing: migrate, demo tree and history …", flush=True)
    call_command("migrate", verbosity=0)
    call_command("collectstatic", "--noinput", verbosity=0)  # pages run with DEBUG off
    call_command("seed_demo", "--no-progress", "--days", str(args.demo_days), verbosity=0)
    reader = get_user_model().objects.get(username="partner")
    partner = Tenant.objects.get(memberships__user=reader)
    agents = sorted(
        Tenant.objects.filter(kind="agent", tree_id=partner.tree_id).values_list("slug", flat=True)
    )
    _, key = ApiKey.objects.create_key(name="load", tenant=partner, scopes=["ingest"])
    token, _ = Token.objects.get_or_create(user=reader)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # fresh bulk-loaded tables: give the planner statistics
    day = datetime.now(UTC).date()
    before = platform_totals(day)

    web, base = start_web(env, workers=1 if args.ingest_pool else 2, threads=args.web_threads)
    servers = [web]
    ingest_base = base
    if args.ingest_pool:
        # The ingestion endpoint on its own worker, as a load balancer would route it.
        ingest_web, ingest_base = start_web(
            env, workers=1, threads=args.web_threads, nice=args.nice
        )
        servers.append(ingest_web)
    cluster = start(
        [sys.executable, "manage.py", "qcluster"], env, args.nice if args.ingest_pool else 0
    )
    try:
        for url in {base, ingest_base}:
            wait_until_up(url)
        wait_for_first_scheduled_rollup()
        opener = logged_in_opener(base, "partner", "partner-demo-2026")
        readers = Readers(base, opener, token.key, partner.slug, args.readers, args.read_pause)
        readers.start()
        clients, elapsed, cpu = alternate(args, readers, ingest_base, key, agents)
        readers.stop()
    finally:
        for server in servers:
            stop_group(server)
        stop_group(cluster)

    from django.db import connections

    connections.close_all()
    rollups = RollupRun.objects.filter(trigger="schedule", status="success").count()
    compactions = RollupRun.objects.filter(trigger="compaction", status="success")
    compaction_ms = sorted(compactions.values_list("duration_ms", flat=True))
    sent = sum(sum(c.events.values()) for c in clients)
    accepted = sum(c.accepted for c in clients)
    errors = sum(c.errors for c in clients) + readers.errors
    after = platform_totals(day)
    run_rollup(trigger="bench")
    after_rollup = platform_totals(day)

    print(f"\nIngested {accepted:,} events in {elapsed:.1f} s: {accepted / elapsed:,.0f} events/s "
          f"({args.clients} clients, batches of {args.batch}); scheduled rollups during the "
          f"run: {rollups}")  # fmt: skip
    if compaction_ms:
        from django.conf import settings

        print(
            f"Compactions: {len(compaction_ms)} (every {settings.USAGE_COMPACT_EVENTS:,} "
            f"events, at most every {settings.USAGE_COMPACT_SECONDS} s), median "
            f"{percentile(compaction_ms, 50):.0f} ms, longest {compaction_ms[-1]} ms"
        )
    resends = sum(c.errors for c in clients)
    duplicates = sum(c.duplicates for c in clients)
    print(f"Errors: {errors} (ingest resends {resends}, reader errors {readers.errors}); "
          f"duplicates reported {duplicates}")  # fmt: skip
    if readers.last_error:
        print(f"  last reader error: {readers.last_error}")
    lost = doubled = 0
    for meter in METERS:
        expected_qty = sum(c.expected[meter] for c in clients)
        expected_n = sum(c.events[meter] for c in clients)
        for label, totals in (("live", after), ("after rollup", after_rollup)):
            quantity = totals[meter][0] - before[meter][0]
            count = totals[meter][1] - before[meter][1]
            lost += max(0, expected_n - count)
            doubled += max(0, count - expected_n)
            status = "ok" if (count == expected_n and quantity == expected_qty) else "MISMATCH"
            print(f"  {meter:<14} {label:<13} events {count:>8,} / sent {expected_n:>8,}  "
                  f"quantity {quantity} / {expected_qty}  {status}")  # fmt: skip
    print(f"Lost: {lost}  double-counted: {doubled}  (sent {sent:,}, accepted {accepted:,})")
    print(
        f"\nMachine CPU busy: {cpu['baseline'][0] / max(1, cpu['baseline'][1]):.0%} reading "
        f"alone, {cpu['ingest'][0] / max(1, cpu['ingest'][1]):.0%} under ingest "
        f"({os.cpu_count()} cores; readers pause {args.read_pause} s between requests; "
        f"{args.windows} window(s) of each phase)"
    )
    if args.ingest_pool:
        print(f"Ingestion pool and task cluster at nice {args.nice}")
    print("Read latency (ms)      p50      p95   samples")
    for kind in ("page", "api"):
        base_p95 = percentile(readers.timings[("baseline", kind)], 95)
        load_p95 = percentile(readers.timings[("ingest", kind)], 95)
        for phase in ("baseline", "ingest"):
            values = readers.timings[(phase, kind)]
            print(f"  {kind:<4} {phase:<9} {percentile(values, 50):8.1f} "
                  f"{percentile(values, 95):8.1f} {len(values):9}")  # fmt: skip
        print(f"  {kind:<4} p95 ratio under ingest: {load_p95 / base_p95:.2f}")
    print("What the slow reads met:")
    for line in slow_read_causes(
        readers, clients, lambda kind: percentile(readers.timings[("baseline", kind)], 95)
    ):
        print(line)


if __name__ == "__main__":
    main()
