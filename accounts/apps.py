from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Tenants and access"

    def ready(self):
        from django.db.models.signals import pre_delete

        from accounts import brands  # noqa: F401 - connects the brand cache's receivers
        from accounts.models import Tenant
        from accounts.signals import refuse_blocked_deletion

        pre_delete.connect(refuse_blocked_deletion, sender=Tenant, dispatch_uid="tenant-blockers")
