"""The ClickHouse schema as code: numbered SQL files applied in order, each once,
recorded in a table of applied migrations (`manage.py ch_migrate`)."""

from pathlib import Path
from string import Template

from django.conf import settings

from metering.clickhouse import client, database

MIGRATIONS_DIR = Path(__file__).parent / "sql"
APPLIED_TABLE = "schema_migrations"


def migration_files() -> list[Path]:
    return sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9][0-9]_*.sql"))


def on_cluster() -> str:
    cluster = settings.CLICKHOUSE_CLUSTER
    return f"ON CLUSTER {cluster}" if cluster else ""


def render(path: Path) -> str:
    """The file's SQL with this deployment's database, engine and cluster."""
    return Template(path.read_text()).substitute(
        database=database(),
        engine=settings.CLICKHOUSE_ENGINE,
        on_cluster=on_cluster(),
    )


def statements(sql: str) -> list[str]:
    """The file's statements (separated by semicolons at the ends of lines), less
    comment lines."""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    return [part.strip() for part in "\n".join(lines).split(";\n") if part.strip(" \n;")]


def applied() -> set[str]:
    return {name for (name,) in client.rows(f"SELECT name FROM {database()}.{APPLIED_TABLE}")}


def pending() -> list[str]:
    """The migrations not applied yet (every one where none was ever applied)."""
    done = applied() if client.command(f"EXISTS TABLE {database()}.{APPLIED_TABLE}") else set()
    return [path.stem for path in migration_files() if path.stem not in done]


def ensure_bookkeeping() -> None:
    client.command(f"CREATE DATABASE IF NOT EXISTS {database()} {on_cluster()}")
    client.command(
        f"CREATE TABLE IF NOT EXISTS {database()}.{APPLIED_TABLE} {on_cluster()} "
        "(name String, applied_at DateTime DEFAULT now()) "
        "ENGINE = ReplacingMergeTree ORDER BY name"
    )


def migrate(report=print) -> list[str]:
    """Apply the migrations not applied yet, in order; returns their names.

    Every statement is idempotent (IF NOT EXISTS), so a migration interrupted
    half way is simply applied again."""
    ensure_bookkeeping()
    done = applied()
    ran = []
    for path in migration_files():
        if path.stem in done:
            continue
        for statement in statements(render(path).rstrip().rstrip(";") + ";\n"):
            client.command(statement.rstrip(";"))
        client.insert(f"{database()}.{APPLIED_TABLE}", [[path.stem]], ["name"])
        report(f"Applied {path.stem}")
        ran.append(path.stem)
    return ran
