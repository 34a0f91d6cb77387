"""event_id becomes unique per tenant instead of platform-wide.

On PostgreSQL the new unique index is built CONCURRENTLY, so ingestion goes on
while it builds (the migration is not atomic for that reason); the constraint is
then attached to the finished index and the old one dropped, both instantly.
SQLite cannot drop a table-level UNIQUE without rebuilding the table, so it
rebuilds the table once for both changes. Reversing fails if two tenants have
since stored the same event_id (the old rule would not hold).
"""

from django.db import migrations, models, transaction

OLD = models.UniqueConstraint(fields=("event_id",), name="event_id_unique")
NEW = models.UniqueConstraint(fields=("tenant", "event_id"), name="event_tenant_event_id")


class SwapEventUniqueness(migrations.operations.base.Operation):
    reversible = True

    def __init__(self, drop, add):
        self.drop, self.add = drop, add

    def deconstruct(self):
        return self.__class__.__name__, [], {"drop": self.drop, "add": self.add}

    def state_forwards(self, app_label, state):
        state.remove_constraint(app_label, "usageevent", self.drop.name)
        state.add_constraint(app_label, "usageevent", self.add)

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, "usageevent")
        if schema_editor.connection.vendor == "postgresql":
            swap_concurrently(schema_editor, model, self.drop, self.add)
        else:
            # One table rebuild with the new state's constraints (Django's own SQLite path
            # would rebuild once per constraint), all or nothing.
            with transaction.atomic(using=schema_editor.connection.alias):
                schema_editor._remake_table(model)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        self.__class__(drop=self.add, add=self.drop).database_forwards(
            app_label, schema_editor, from_state=from_state, to_state=to_state
        )

    def describe(self):
        return f"Replace unique {self.drop.name} by {self.add.name} on usage events"


def swap_concurrently(schema_editor, model, drop, add):
    quote = schema_editor.quote_name
    table = quote(model._meta.db_table)
    columns = ", ".join(quote(model._meta.get_field(f).column) for f in add.fields)
    name = quote(add.name)
    schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")  # a build left invalid
    schema_editor.execute(f"CREATE UNIQUE INDEX CONCURRENTLY {name} ON {table} ({columns})")
    schema_editor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} UNIQUE USING INDEX {name}")
    schema_editor.execute(f"ALTER TABLE {table} DROP CONSTRAINT {quote(drop.name)}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("metering", "0003_event_indexes"),
    ]

    operations = [SwapEventUniqueness(drop=OLD, add=NEW)]
