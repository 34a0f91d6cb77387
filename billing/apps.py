from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self):
        from django.db.models.signals import post_migrate

        from accounts.signals import tenant_moved
        from billing.receivers import install_schedules_after_migrate, shift_history_on_move

        tenant_moved.connect(shift_history_on_move, dispatch_uid="billing-shift-history")
        post_migrate.connect(
            install_schedules_after_migrate, sender=self, dispatch_uid="billing-schedules"
        )
