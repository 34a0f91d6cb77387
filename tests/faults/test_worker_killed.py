"""A task worker killed (SIGKILL) in the middle of a rollup: after a restart the next
run leaves exactly the rows an uninterrupted run gives."""

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from django.utils import timezone
from django_q.models import Schedule

from billing.models import DailyUsage, DistinctValue, RolledDay, RollupRun
from billing.schedules import ROLLUP_SCHEDULE, install_schedules
from billing.usage.rollup import run_rollup
from metering.models import Meter, UsageEvent
from tests.processes import stop_group

ROOT = Path(__file__).resolve().parents[2]
DAYS = 150
CALLS_PER_DAY = 30  # enough events that the rollup takes a while to read


def table():
    return sorted(
        DailyUsage.objects.values_list(
            "tenant__slug", "meter__code", "day", "dimension", "source", "quantity", "event_count"
        )
    )


def load_history(world):
    """Events on many days (written directly: the history predates the back-dating window)."""
    meters = {m.code: m for m in Meter.objects.filter(code__in=["call_minutes", "storage_units"])}
    start = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    events = []
    for offset in range(1, DAYS + 1):
        at = start - timedelta(days=offset)
        for n, tenant in enumerate((world.agent_a, world.agent_b, world.org_a)):
            events.extend(UsageEvent(
                event_id=f"hist-{offset}-{n}-{k}", tenant=tenant, meter=meters["call_minutes"],
                quantity=Decimal(offset + k) / 4, occurred_at=at, received_at=at, source="api",
            ) for k in range(CALLS_PER_DAY))  # fmt: skip
            events.append(UsageEvent(
                event_id=f"hist-{offset}-{n}-su", tenant=tenant, meter=meters["storage_units"],
                quantity=Decimal(n + 1), occurred_at=at, received_at=at, source="service",
                dimension="hot", attributes={"tier": "hot"},
            ))  # fmt: skip
    UsageEvent.objects.bulk_create(events)


def forget_rollups():
    for model in (DailyUsage, RolledDay, DistinctValue, RollupRun):
        model.objects.all().delete()


def start_cluster(env):
    return subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def due_now():
    Schedule.objects.filter(name=ROLLUP_SCHEDULE).update(
        next_run=timezone.now() - timedelta(minutes=1)
    )


def wait_for(condition, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.005)
    raise AssertionError(f"{what} did not happen within {seconds} s")


def test_sigkill_mid_rollup_then_restart_gives_identical_rows(world, child_env):
    load_history(world)
    run_rollup(grace=timedelta(0))
    reference = table()
    assert len({row[2] for row in reference}) == DAYS
    forget_rollups()

    install_schedules()
    due_now()
    env = {**child_env, "USAGE_Q_GUARD_CYCLE": "30", "USAGE_Q_WORKERS": "1"}
    cluster = start_cluster(env)
    try:
        wait_for(
            lambda: RollupRun.objects.filter(status=RollupRun.Status.RUNNING).exists(),
            90,
            "the scheduled rollup starting",
        )
        os.killpg(cluster.pid, signal.SIGKILL)  # the whole cluster, mid-run
        cluster.wait()
    finally:
        if cluster.poll() is None:
            os.killpg(cluster.pid, signal.SIGKILL)
    interrupted = RollupRun.objects.get()
    assert interrupted.status == RollupRun.Status.RUNNING  # it never finished
    assert RolledDay.objects.count() < DAYS  # not every day was done

    due_now()  # the next interval comes round after the restart
    cluster = start_cluster(env)
    try:
        wait_for(
            lambda: RollupRun.objects.filter(status=RollupRun.Status.SUCCESS).exists(),
            120,
            "the rollup after the restart",
        )
    finally:
        stop_group(cluster)
    assert table() == reference
    # The next run noticed that the killed one's process is gone.
    interrupted.refresh_from_db()
    assert interrupted.status == RollupRun.Status.ABANDONED
    assert interrupted.finished_at is not None
