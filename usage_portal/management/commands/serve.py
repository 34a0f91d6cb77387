"""Serve the portal with the task cluster beside it; Ctrl-C (or SIGTERM) stops both."""

import contextlib
import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand

STOP_GRACE_SECONDS = 10


class Command(BaseCommand):
    help = "Run the web server (gunicorn) and the django-q2 cluster together."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")

    def handle(self, *args, host, port, workers, **options):
        manage = str(settings.BASE_DIR / "manage.py")
        commands = {
            "web": [
                sys.executable,
                "-m",
                "gunicorn",
                "usage_portal.wsgi:application",
                "--bind",
                f"{host}:{port}",
                "--workers",
                str(workers),
                "--timeout",
                "120",
                "--graceful-timeout",
                "5",
            ],
            "tasks": [sys.executable, manage, "qcluster"],
        }
        children = {
            # Each child leads its own process group, so stopping reaches its workers
            # too; django-q2's cluster may ignore a plain Ctrl-C (django-q2#66).
            name: subprocess.Popen(cmd, cwd=settings.BASE_DIR, start_new_session=True)
            for name, cmd in commands.items()
        }
        self.stdout.write(
            f"Serving http://{host}:{port}/ with the task cluster; Ctrl-C stops both."
        )
        stopping = False

        def request_stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        exit_code = 0
        while not stopping:
            exited = {n: c.poll() for n, c in children.items() if c.poll() is not None}
            if exited:
                name, code = next(iter(exited.items()))
                self.stderr.write(f"The {name} process exited ({code}); stopping the rest.")
                exit_code = code or 1
                break
            time.sleep(0.3)
        stop_all(children.values())
        self.stdout.write("Stopped.")
        if exit_code:
            sys.exit(exit_code)


def stop_all(processes) -> None:
    """SIGTERM every process group, then SIGKILL whatever outlives the grace period."""
    for proc in processes:
        signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for proc in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    for proc in processes:
        signal_group(proc, signal.SIGKILL)
        proc.wait()


def signal_group(proc, signum) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signum)
