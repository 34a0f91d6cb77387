"""Settings come from the environment; production settings pass Django's deploy check."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def run_manage(*args, **env):
    full_env = {**os.environ, **env}
    # Set in-process for the browser tests; check --deploy rightly warns about it.
    full_env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_in_production_shape():
    result = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(60),
        DJANGO_ALLOWED_HOSTS="usage.example.com",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_flags_debug_mode():
    result = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_DEBUG="1",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(60),
    )
    assert result.returncode != 0
    assert "DEBUG" in result.stdout + result.stderr


def test_settings_read_environment():
    code = (
        "from django.conf import settings as s;"
        "print(s.DEBUG, s.ALLOWED_HOSTS, s.USAGE_ROLLUP_INTERVAL_MINUTES, s.USAGE_BACKDATE_DAYS,"
        " 'redis' in s.Q_CLUSTER, s.DATABASES['default']['ENGINE'])"
    )
    result = run_manage(
        "shell",
        "--no-imports",
        "-c",
        code,
        DJANGO_DEBUG="1",
        DJANGO_ALLOWED_HOSTS="a.example, b.example",
        USAGE_ROLLUP_INTERVAL_MINUTES="60",
        USAGE_BACKDATE_DAYS="7",
        REDIS_URL="redis://127.0.0.1:6379/0",
        DATABASE_URL="postgres://u:p@127.0.0.1:5432/x",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "True ['a.example', 'b.example'] 60 7 True django.db.backends.postgresql"
    )


def test_defaults_are_safe():
    code = (
        "from django.conf import settings as s;"
        "print(s.DEBUG, s.ALLOWED_HOSTS, 'orm' in s.Q_CLUSTER)"
    )
    env = {k: "" for k in ("DJANGO_DEBUG", "DJANGO_ALLOWED_HOSTS", "REDIS_URL")}
    result = run_manage("shell", "--no-imports", "-c", code, **env)
    assert result.stdout.strip() == "False ['localhost', '127.0.0.1'] True"


def test_sqlite_runs_in_wal_mode_with_busy_timeout(db):
    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"
    assert connection.settings_dict["OPTIONS"]["timeout"] >= 5
    assert connection.settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
