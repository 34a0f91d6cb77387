from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "reports"
    verbose_name = "Reports"

    def ready(self):
        from django.db.models.signals import post_migrate

        post_migrate.connect(install_send_schedule, sender=self, dispatch_uid="reports-schedule")


def install_send_schedule(sender, **kwargs) -> None:
    from reports.schedules import install_schedule

    install_schedule()
