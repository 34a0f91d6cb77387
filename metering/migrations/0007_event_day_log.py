from django.db import migrations, models

# One row per insert statement and UTC day (see EventDayLog). A statement-level
# trigger sees the statement's rows at once, so a batch of a thousand events
# costs one grouped read of them in memory and one row here, not a write per event.
LOG_FUNCTION = """
CREATE FUNCTION metering_log_event_days() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO metering_eventdaylog (day, first_id, last_id, events)
    SELECT (occurred_at AT TIME ZONE 'UTC')::date, MIN(id), MAX(id), COUNT(*)
    FROM inserted GROUP BY 1;
    RETURN NULL;
END
$$
"""
LOG_TRIGGER = """
CREATE TRIGGER metering_usageevent_log_days AFTER INSERT ON metering_usageevent
REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT
EXECUTE FUNCTION metering_log_event_days()
"""
# Also in sessions that bulk-load with session_replication_role = replica. (The
# rollup trusts the log only in this state: see billing.usage.runs.new_events_by_day.)
LOG_ALWAYS = (
    "ALTER TABLE metering_usageevent ENABLE ALWAYS TRIGGER metering_usageevent_log_days"
)
# The events stored but not rolled up yet (past the billing watermark): their
# days, as one row each. A read of the newest ids only; ingestion waits for it,
# since CREATE TRIGGER locks the event table until the migration commits.
BACKFILL = """
INSERT INTO metering_eventdaylog (day, first_id, last_id, events)
SELECT (occurred_at AT TIME ZONE 'UTC')::date, MIN(id), MAX(id), COUNT(*)
FROM metering_usageevent
WHERE id > (SELECT COALESCE(MAX(watermark), 0) FROM billing_rolluprun WHERE status = 'success')
GROUP BY 1
"""


def install_trigger(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for sql in (LOG_FUNCTION, LOG_TRIGGER, LOG_ALWAYS, BACKFILL):
        schema_editor.execute(sql)


def remove_trigger(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("DROP TRIGGER IF EXISTS metering_usageevent_log_days ON metering_usageevent")
    schema_editor.execute("DROP FUNCTION IF EXISTS metering_log_event_days()")


class Migration(migrations.Migration):

    dependencies = [
        ('metering', '0006_event_move'),
        # The backfill reads the billing watermark.
        ('billing', '0001_tenant_billing_table'),
    ]

    operations = [
        migrations.CreateModel(
            name='EventDayLog',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('day', models.DateField()),
                ('first_id', models.BigIntegerField()),
                ('last_id', models.BigIntegerField()),
                ('events', models.BigIntegerField()),
            ],
        ),
        migrations.RunPython(install_trigger, remove_trigger),
    ]
