from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self):
        from django.db.models.signals import post_delete, post_migrate, post_save

        from accounts.signals import tenant_moved
        from billing import receivers
        from billing.models import Subscription
        from billing.signals import statement_finalized
        from metering.signals import events_stored

        tenant_moved.connect(receivers.shift_history_on_move, dispatch_uid="billing-shift-history")
        post_migrate.connect(
            receivers.install_schedules_after_migrate, sender=self, dispatch_uid="billing-schedules"
        )
        events_stored.connect(receivers.check_limits_on_ingest, dispatch_uid="billing-limits")
        events_stored.connect(receivers.compact_tail_on_ingest, dispatch_uid="billing-compaction")
        statement_finalized.connect(
            receivers.mail_statement_on_finalize, dispatch_uid="billing-statement-mail"
        )
        for signal in (post_save, post_delete):
            signal.connect(
                receivers.refresh_draft_on_subscription_change,
                sender=Subscription,
                dispatch_uid=f"billing-draft-{signal is post_save}",
            )
