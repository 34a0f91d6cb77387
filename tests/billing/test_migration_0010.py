"""billing 0010 turns a stored line's plan tiers into the tiers applied to its
overage (the amounts stay), and gives plan tiers a flat fee of 0; and back."""

from datetime import date
from decimal import Decimal as D

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("billing", "0009_help_texts_and_constraint_messages")]
AFTER = [("billing", "0010_charge_models_dimensions_minimum_commitment")]
TIERS = [{"up_to": "100", "unit_price": "0.1"}, {"up_to": None, "unit_price": "0.05"}]


def migrated(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_line_tiers_become_the_tiers_applied_and_back():
    old = migrated(BEFORE)
    tenant = old.get_model("accounts", "Tenant").objects.create(
        name="Org", slug="org-m", kind="organization", lft=1, rght=2, tree_id=1, level=0
    )
    meter = old.get_model("metering", "Meter").objects.get(code="call_minutes")
    plan = old.get_model("billing", "Plan").objects.create(code="m-plan", name="M")
    old.get_model("billing", "PlanItem").objects.create(
        plan=plan, meter=meter, tiers=TIERS, unit_price=None
    )
    statement = old.get_model("billing", "Statement").objects.create(
        tenant=tenant, period=date(2026, 11, 1), currency="USD", base_fee=0, usage_amount=D("12.5"),
        total=D("12.5"), as_of="2026-12-01T00:00Z",
    )  # fmt: skip
    old.get_model("billing", "StatementLine").objects.create(
        statement=statement, meter=meter, plan_code="m-plan", starts_on=date(2026, 11, 1),
        ends_on=date(2026, 11, 30), used=D("150"), included=0, overage=D("150"), tiers=TIERS,
        amount=D("12.5"),
    )  # fmt: skip
    try:
        new = migrated(AFTER)
        line = new.get_model("billing", "StatementLine").objects.get()
        assert line.tiers == [
            {"from": "0", "to": "100", "units": "100", "unit_price": "0.1", "flat_fee": "0",
             "amount": "10"},
            {"from": "100", "to": None, "units": "50", "unit_price": "0.05", "flat_fee": "0",
             "amount": "2.5"},
        ]  # fmt: skip
        assert sum(D(t["amount"]) for t in line.tiers) == line.amount
        item = new.get_model("billing", "PlanItem").objects.get()
        assert [t["flat_fee"] for t in item.tiers] == ["0", "0"]

        back = migrated(BEFORE)
        assert back.get_model("billing", "PlanItem").objects.get().tiers == TIERS
        assert back.get_model("billing", "StatementLine").objects.get().tiers == TIERS
    finally:
        migrated(MigrationExecutor(connection).loader.graph.leaf_nodes())
