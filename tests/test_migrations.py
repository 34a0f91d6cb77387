"""Every migration runs forward and back: an upgrade can be undone."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from tests.conftest import database_url

ROOT = Path(__file__).resolve().parent.parent
APPS_LAST_FIRST = ["reports", "billing", "metering", "accounts"]


@pytest.fixture
def scratch_database_url(db, tmp_path):
    """An empty database of the same kind as the test database, dropped afterwards."""
    if connection.vendor == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.sqlite3'}"
        return
    import psycopg

    base = database_url()
    name = f"{connection.settings_dict['NAME']}_migrations"
    admin = base.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    yield base.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrate(url, *args):
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", *args],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_migrations_run_forward_back_to_zero_and_forward_again(scratch_database_url):
    migrate(scratch_database_url)
    for app in APPS_LAST_FIRST:
        migrate(scratch_database_url, app, "zero")
    shown = subprocess.run(
        [sys.executable, "manage.py", "showmigrations", *APPS_LAST_FIRST],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": scratch_database_url},
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert "[X]" not in shown and "[ ]" in shown
    migrate(scratch_database_url)
