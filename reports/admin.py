from django.contrib import admin

from accounts.admin import TenantScopedAdminMixin
from accounts.scoped_admin import ScopedInlineMixin
from reports.models import ReportDelivery, ReportSchedule


class SentInline(ScopedInlineMixin, admin.TabularInline):
    model = ReportDelivery
    extra = 0
    can_delete = False
    fields = readonly_fields = ("period_start", "period_end", "sent_at", "recipients")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(ReportSchedule)
class ReportScheduleAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    list_display = ("tenant", "frequency", "recipients", "is_active", "created_at")
    list_filter = ("frequency", "is_active")
    inlines = [SentInline]

    def has_add_permission(self, request, obj=None):
        return False  # added on the tenant's scheduled reports page or through the API
