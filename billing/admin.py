from django.contrib import admin

from accounts.admin import TenantScopedAdminMixin
from billing.models import DailyUsage, RollupRun


@admin.register(RollupRun)
class RollupRunAdmin(admin.ModelAdmin):
    """What each rollup did; written by the rollup only."""

    list_display = (
        "started_at", "status", "trigger", "window_start", "window_end", "days_recomputed",
        "events_read", "rows_written", "duration_ms", "watermark",
    )  # fmt: skip
    list_filter = ("status", "trigger")
    readonly_fields = [f.name for f in RollupRun._meta.fields]

    def has_module_permission(self, request):
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(DailyUsage)
class DailyUsageAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    """The tenant billing table, read-only (the rollup owns it)."""

    list_display = ("tenant", "meter", "day", "dimension", "source", "quantity", "event_count")
    list_filter = ("meter__category", "source", "meter")
    search_fields = ("tenant__slug", "tenant__name")
    date_hierarchy = "day"
    list_select_related = ("tenant", "meter")
    show_full_result_count = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False
