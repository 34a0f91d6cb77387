"""The meter catalog and the usage records in the admin, on the scoped base."""

import json

from django.contrib import admin, messages

from accounts.models import Tenant
from accounts.scoped_admin import TenantScopedAdminMixin
from metering.models import Meter, UsageEvent
from metering.receivers import meter_deletion_blockers
from metering.stores import event_store, uses_clickhouse


@admin.register(Meter)
class MeterAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    """The catalog belongs to platform operators; staff may look it up."""

    catalog = True

    list_display = ("code", "name", "category", "unit", "aggregation", "group_by", "is_active")
    list_filter = ("category", "aggregation", "is_active")
    search_fields = ("code", "name")

    def get_readonly_fields(self, request, obj=None):
        # Events name their meter by code in the API and CSVs: it stays once used.
        if obj is not None and event_store().holds_events(meter_id=obj.pk):
            return ("code",)
        return ()

    def get_deleted_objects(self, objs, request):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        return deleted, counts, perms_needed, [*protected, *meter_deletion_blockers(objs)]

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    has_add_permission = has_change_permission
    has_delete_permission = has_change_permission


class MeterCategoryFilter(admin.SimpleListFilter):
    """By meter category, as the meters' ids (see `UsageEventQuerySet.of_meters`)."""

    title = "meter category"
    parameter_name = "category"

    def lookups(self, request, model_admin):
        return Meter.Category.choices

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.of_meters(category=value) if value else queryset


@admin.register(UsageEvent)
class UsageEventAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    """Usage records, read-only: corrections are new events sent through the API.

    Millions of rows: the list is newest first through the time index (or the
    meter's, when filtered by meter), sorts by no other column, counts no facets,
    and searches by exact key through indexes instead of scanning every event id.
    """

    list_display = ("event_id", "tenant", "meter", "quantity", "occurred_at", "source")
    list_filter = ("source", MeterCategoryFilter, "meter")
    search_fields = ("event_id", "tenant__slug")
    search_help_text = "An event id, or a tenant's slug (the events of its subtree)."
    list_select_related = ("tenant", "meter")
    date_hierarchy = "occurred_at"
    ordering = ("-occurred_at", "-id")
    sortable_by = ("occurred_at",)
    show_facets = admin.ShowFacets.NEVER
    show_full_result_count = False
    exclude = ("attributes",)
    readonly_fields = ("attributes_shown",)

    def has_change_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        if uses_clickhouse():
            messages.info(
                request,
                "Usage events are stored in ClickHouse, not listed here: read them on a "
                "tenant's records page or through /api/v1/events/.",
            )
        return super().changelist_view(request, extra_context)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        tenants = Tenant.objects.visible_to(request.user)
        tenant = tenants.filter(slug=term).first()
        if tenant is not None:
            return queryset.within(tenant), False
        # Event ids are unique per tenant: looked up tenant by tenant through that
        # key, as no index leads with the event id.
        return queryset.filter(tenant__in=tenants.order_by().values("pk"), event_id=term), False

    @admin.display(description="Attributes")
    def attributes_shown(self, obj):
        # Rows stored before text was checked may hold a lone surrogate, which no
        # page can encode: shown as its escape rather than failing the page.
        text = json.dumps(obj.attributes, ensure_ascii=False, sort_keys=True)
        return text.encode("utf-8", "backslashreplace").decode("utf-8")

    def has_add_permission(self, request, obj=None):
        return False
