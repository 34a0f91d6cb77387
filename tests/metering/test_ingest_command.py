import json
from datetime import timedelta
from decimal import Decimal

from django.core.management import call_command
from django.utils import timezone

from tests.stored import stored_event, stored_events


def write_jsonl(path, events):
    path.write_text("\n".join(e if isinstance(e, str) else json.dumps(e) for e in events) + "\n")


def test_jsonl_load_reports_accepted_duplicates_and_rejected_lines(world, tmp_path, capsys):
    at = (timezone.now() - timedelta(hours=2)).isoformat()
    good = [
        {
            "event_id": f"f-{i}",
            "tenant": "agent-a",
            "meter": "emails",
            "quantity": 1,
            "timestamp": at,
        }
        for i in range(7)
    ]
    lines = [*good[:3], "{broken", good[3], {**good[4], "quantity": "NaN"}, *good[5:], good[0]]
    source = tmp_path / "usage.jsonl"
    write_jsonl(source, lines)
    call_command("ingest", str(source), "--batch-size", "4", "--no-progress")
    out = capsys.readouterr().out
    assert "6 accepted, 1 duplicates, 2 rejected." in out
    assert "line 4: not valid JSON" in out
    assert "line 6: quantity:" in out
    assert len(stored_events()) == 6

    call_command("ingest", str(source), "--no-progress")
    assert "0 accepted, 7 duplicates, 2 rejected." in capsys.readouterr().out
    assert len(stored_events()) == 6


def test_dry_run_stores_nothing(world, tmp_path, capsys):
    source = tmp_path / "usage.jsonl"
    write_jsonl(
        source,
        [{"event_id": "d-1", "tenant": "agent-a", "meter": "emails", "quantity": 1}],
    )
    call_command("ingest", str(source), "--dry-run", "--no-progress")
    assert "1 would be accepted, 0 duplicates, 0 rejected." in capsys.readouterr().out
    assert not stored_events()


def test_csv_with_attribute_columns(world, tmp_path, capsys):
    source = tmp_path / "usage.csv"
    source.write_text(
        "event_id,tenant,meter,quantity,source,attr_tier\n"
        "c-1,agent-a,storage_units,12.5,service,hot\n"
        "c-2,agent-a,storage_units,abc,service,cool\n"
        "c-3,EXT-ORG-A,storage_units,3,service,archive\n"
    )
    call_command("ingest", str(source), "--no-progress")
    out = capsys.readouterr().out
    assert "2 accepted, 0 duplicates, 1 rejected." in out and "line 3: quantity" in out
    stored = stored_event(event_id="c-1")
    assert stored.quantity == Decimal("12.5") and stored.dimension == "hot"
    assert stored.source == "service"


def test_hostile_lines_are_reported_and_the_rest_stored(world, tmp_path, capsys):
    at = (timezone.now() - timedelta(hours=2)).isoformat()
    base = {"tenant": "agent-a", "meter": "emails", "quantity": 1, "timestamp": at}
    lines = [
        {**base, "event_id": "h-1"},
        '{"event_id": "h-2", "tenant": "agent-a", "meter": "emails", "quantity": 1e999999999}',
        '{"event_id": "h-3", "attributes": ' + "[" * 100_000 + "]" * 100_000 + "}",
        {**base, "event_id": "h-4", "attributes": {"k": "a\u0000b"}},
        {**base, "event_id": "h-5\ud800"},
        {**base, "event_id": "h-6", "tenant": ["agent-a"]},
        {**base, "event_id": "h-7", "quantity": "-1e999999999"},
        {**base, "event_id": "h-8"},
    ]
    source = tmp_path / "usage.jsonl"
    source.write_text(
        "\n".join(e if isinstance(e, str) else json.dumps(e) for e in lines) + "\n",
        encoding="utf-8",
        errors="surrogatepass",
    )
    call_command("ingest", str(source), "--no-progress")
    out = capsys.readouterr().out
    assert "2 accepted, 0 duplicates, 6 rejected." in out
    for line_no in range(2, 8):
        assert f"line {line_no}:" in out
    assert "nested more than" in out.lower() and "U+0000" in out
    assert {e.event_id for e in stored_events()} == {"h-1", "h-8"}
