"""What the configured event store holds, for assertions that hold in both stores."""

from metering.stores import event_store
from metering.stores.events import StoredEvent


def stored_events(**match) -> list[StoredEvent]:
    """Every stored event (in arrival order) whose fields equal `match`."""
    return [
        event
        for event in event_store().events()
        if all(getattr(event, name) == value for name, value in match.items())
    ]


def stored_event(**match) -> StoredEvent:
    """The one stored event matching `match`."""
    found = stored_events(**match)
    assert len(found) == 1, f"{len(found)} stored events match {match}"
    return found[0]


def relational_only(reason: str):
    """Skip a test of the relational event table's own behaviour in ClickHouse mode."""
    import pytest
    from django.conf import settings

    return pytest.mark.skipif(settings.USAGE_EVENT_STORE == "clickhouse", reason=reason)


def skip_in_clickhouse(reason: str) -> None:
    """relational_only, from inside a fixture (marks on fixtures do nothing)."""
    import pytest
    from django.conf import settings

    if settings.USAGE_EVENT_STORE == "clickhouse":
        pytest.skip(reason)
