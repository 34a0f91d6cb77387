"""Refuse overlapping subscriptions of one tenant in the database itself.

Validation already says so in forms and the API; this guard also covers
concurrent writers and raw writes. PostgreSQL: a trigger that serializes writers
per tenant with an advisory lock, then checks (no extension needed, unlike an
exclusion constraint on tenant + daterange). SQLite: triggers raising ABORT
(SQLite serializes writers already).
"""

from django.db import migrations

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION billing_subscription_no_overlap() RETURNS trigger AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('billing_subscription'), NEW.tenant_id::int);
    IF EXISTS (
        SELECT 1 FROM billing_subscription s
        WHERE s.tenant_id = NEW.tenant_id AND s.id <> NEW.id
          AND daterange(s.starts_on, s.ends_on, '[]') && daterange(NEW.starts_on, NEW.ends_on, '[]')
    ) THEN
        RAISE EXCEPTION 'subscription overlaps another of tenant %', NEW.tenant_id
            USING ERRCODE = 'exclusion_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER billing_subscription_no_overlap
    BEFORE INSERT OR UPDATE ON billing_subscription
    FOR EACH ROW EXECUTE FUNCTION billing_subscription_no_overlap();
"""

PG_DROP = """
DROP TRIGGER IF EXISTS billing_subscription_no_overlap ON billing_subscription;
DROP FUNCTION IF EXISTS billing_subscription_no_overlap();
"""

SQLITE_OVERLAP = """
    SELECT RAISE(ABORT, 'subscription overlaps another of the same tenant')
    WHERE EXISTS (
        SELECT 1 FROM billing_subscription s
        WHERE s.tenant_id = NEW.tenant_id AND s.id IS NOT NEW.id
          AND s.starts_on <= COALESCE(NEW.ends_on, '9999-12-31')
          AND NEW.starts_on <= COALESCE(s.ends_on, '9999-12-31')
    );
"""

SQLITE_TRIGGERS = [
    f"CREATE TRIGGER billing_subscription_no_overlap_{event.lower()} BEFORE {event} "
    f"ON billing_subscription BEGIN {SQLITE_OVERLAP} END;"
    for event in ("INSERT", "UPDATE")
]


def add_guard(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_FUNCTION, params=None)
    elif schema_editor.connection.vendor == "sqlite":
        for sql in SQLITE_TRIGGERS:
            schema_editor.execute(sql)


def drop_guard(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_DROP)
    elif schema_editor.connection.vendor == "sqlite":
        for event in ("insert", "update"):
            schema_editor.execute(f"DROP TRIGGER IF EXISTS billing_subscription_no_overlap_{event}")


class Migration(migrations.Migration):
    dependencies = [("billing", "0004_plans_subscriptions_statements")]

    operations = [migrations.RunPython(add_guard, drop_guard)]
