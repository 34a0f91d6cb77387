"""A web worker killed (SIGKILL) while it ingests: the client resends the same
batch with the same event_ids until it is answered; nothing is lost, nothing doubled."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from accounts.models import ApiKey
from billing.usage import usage_summary
from metering.models import UsageEvent
from tests.processes import stop_group
from tests.test_serve import descendants, free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
BATCHES, PER_BATCH = 12, 1000


def batch(number):
    return {
        "events": [
            {"event_id": f"web-{number}-{n}", "tenant": "agent-a", "meter": "call_minutes",
             "quantity": "0.5"}
            for n in range(PER_BATCH)
        ]
    }  # fmt: skip


def post(url, key, body):
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Api-Key {key}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read())


def send_until_answered(url, key, body, failures):
    """What a well-behaved integration does: resend the identical batch on any failure."""
    while True:
        try:
            status, answer = post(url, key, body)
            if status == 201:
                return answer
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            failures.append(repr(error))
        time.sleep(0.05)


def test_killed_web_worker_loses_and_doubles_nothing(world, child_env):
    _, key = ApiKey.objects.create_key(name="load", tenant=world.reseller_a, scopes=["ingest"])
    port = free_port()
    env = {**child_env, "USAGE_THROTTLE_INGEST": "100000/min"}
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "usage_portal.wsgi:application",
         "--bind", f"127.0.0.1:{port}", "--workers", "2", "--timeout", "60"],
        cwd=ROOT, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/api/v1/events/"
    answers, failures, kills = [], [], 0
    try:
        assert wait_for(f"http://127.0.0.1:{port}/healthz") == 200
        for number in range(BATCHES):
            sender = threading.Thread(
                target=lambda n=number: answers.append(
                    send_until_answered(url, key, batch(n), failures)
                )
            )
            sender.start()
            if number % 3 == 1:
                time.sleep(0.03)  # the batch is in flight: kill every worker
                for worker in descendants(server.pid):
                    os.kill(worker, signal.SIGKILL)
                kills += 1
            sender.join(timeout=120)
            assert not sender.is_alive()
    finally:
        stop_group(server)
    assert kills == 4
    assert failures, "no request was interrupted"
    stored = UsageEvent.objects.filter(event_id__startswith="web-")
    assert stored.count() == BATCHES * PER_BATCH  # nothing lost, nothing twice
    # Every event answered as accepted exactly once overall (a resend after a commit
    # whose answer was lost is reported as duplicates, not stored again).
    assert sum(a["accepted"] for a in answers) <= BATCHES * PER_BATCH
    assert sum(a["accepted"] + a["duplicates"] for a in answers) == BATCHES * PER_BATCH
    day = stored.first().occurred_at.date()
    [row] = usage_summary(world.agent_a, day, day).rows
    assert row.quantity == BATCHES * PER_BATCH / 2 and row.event_count == BATCHES * PER_BATCH
