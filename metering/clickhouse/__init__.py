"""The ClickHouse event store's connection: one client per process, from
CLICKHOUSE_URL (a server or cluster over HTTP, or the embedded chdb engine)."""

import threading
from functools import cache
from urllib.parse import urlsplit

from django.conf import settings

EVENTS_TABLE = "usage_events"
# The embedded engine's database (a server's comes from the URL's path).
EMBEDDED_DATABASE = "usage_portal"

_lock = threading.Lock()


def is_embedded() -> bool:
    return settings.CLICKHOUSE_URL.startswith("chdb:")


def database() -> str:
    if is_embedded():
        return EMBEDDED_DATABASE
    return urlsplit(settings.CLICKHOUSE_URL).path.strip("/") or "default"


def events_table() -> str:
    return f"{database()}.{EVENTS_TABLE}"


def _client():
    return _client_for(settings.CLICKHOUSE_URL)


@cache
def _client_for(url: str):
    import clickhouse_connect  # an optional dependency: `pip install .[clickhouse]`

    if url.startswith("chdb:"):
        return clickhouse_connect.get_client(dsn=url)
    # No session: requests from several threads must not share one.
    return clickhouse_connect.get_client(dsn=url, autogenerate_session_id=False)


class Client:
    """The process's client, one call at a time (the embedded engine is one
    in-process instance; over HTTP the lock costs nothing measurable)."""

    def query(self, sql: str, parameters: dict | None = None, **kwargs):
        with _lock:
            return _client().query(sql, parameters=parameters, **kwargs)

    def command(self, sql: str, parameters: dict | None = None, **kwargs):
        with _lock:
            return _client().command(sql, parameters=parameters, **kwargs)

    def insert(self, table: str, rows, column_names, **kwargs):
        with _lock:
            return _client().insert(table, rows, column_names=column_names, **kwargs)

    def rows(self, sql: str, parameters: dict | None = None) -> list[tuple]:
        return self.query(sql, parameters).result_rows


client = Client()
