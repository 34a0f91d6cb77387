from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks"

    def ready(self):
        from django.db.models.signals import post_migrate

        from billing.signals import alert_raised, entitlement_blocked, statement_finalized
        from webhooks import receivers

        alert_raised.connect(receivers.on_alert_raised, dispatch_uid="webhooks-alert")
        entitlement_blocked.connect(receivers.on_entitlement_blocked, dispatch_uid="webhooks-block")
        statement_finalized.connect(receivers.on_statement_finalized, dispatch_uid="webhooks-final")
        post_migrate.connect(
            receivers.install_schedule_after_migrate, sender=self, dispatch_uid="webhooks-schedule"
        )
