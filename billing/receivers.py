"""What billing does when something happens elsewhere."""

from billing.rollup import shift_history
from billing.schedules import install_schedules


def shift_history_on_move(sender, tenant, old_ancestor_ids, new_ancestor_ids, **kwargs):
    shift_history(tenant, old_ancestor_ids, new_ancestor_ids)


def install_schedules_after_migrate(sender, **kwargs):
    install_schedules()
