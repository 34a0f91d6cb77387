"""A real django-q2 cluster fires the installed rollup schedule."""

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from django.utils import timezone
from django_q.models import Schedule

from accounts.models import PlatformPrincipal
from billing.models import DailyUsage, RollupRun
from billing.schedules import ROLLUP_SCHEDULE, install_schedules
from metering.ingestion import ingest_events
from tests.processes import stop_group

ROOT = Path(__file__).resolve().parents[2]


def test_schedules_install_idempotently(db, settings):
    settings.USAGE_ROLLUP_INTERVAL_MINUTES = 15
    install_schedules()
    install_schedules()
    [schedule] = Schedule.objects.filter(name=ROLLUP_SCHEDULE)
    assert schedule.func == "billing.tasks.scheduled_rollup"
    assert schedule.schedule_type == Schedule.MINUTES and schedule.minutes == 15


def test_qcluster_runs_the_scheduled_rollup(world, child_env):
    an_hour_ago = timezone.now() - timedelta(hours=1)
    ingest_events(
        [
            {
                "event_id": "sched-1",
                "tenant": "agent-a",
                "meter": "emails",
                "quantity": 1,
                "timestamp": an_hour_ago.isoformat(),
            }
        ],
        principal=PlatformPrincipal(),
        now=an_hour_ago,
    )
    install_schedules()
    Schedule.objects.filter(name=ROLLUP_SCHEDULE).update(
        next_run=timezone.now() - timedelta(minutes=1)
    )
    env = {**child_env, "USAGE_Q_GUARD_CYCLE": "30", "USAGE_Q_WORKERS": "1"}
    cluster = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            run = RollupRun.objects.filter(trigger="schedule", status="success").first()
            if run is not None:
                break
            assert cluster.poll() is None, cluster.stdout.read()
            time.sleep(0.5)
        else:
            raise AssertionError("the scheduled rollup did not complete within 90 s")
    finally:
        stop_group(cluster)
    assert run.days_recomputed == 1 and run.events_read == 1
    assert broker_in_use() == ("Redis" if os.environ.get("REDIS_URL") else "ORM")
    assert DailyUsage.objects.filter(tenant__slug="partner-p", meter__code="emails").exists()
    schedule = Schedule.objects.get(name=ROLLUP_SCHEDULE)
    assert schedule.next_run > timezone.now()  # rescheduled for the next interval


def broker_in_use() -> str:
    """The broker class the cluster gets from these settings (the child reads the same)."""
    from django_q.brokers import get_broker

    return type(get_broker()).__name__
