from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Tenants and access"

    def ready(self):
        from accounts import brands  # noqa: F401 - connects the brand cache's receivers
