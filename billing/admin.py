"""Billing in the admin: plans (items inline, history kept), subscriptions, and
read-only views of what the services compute — all scoped by tenant."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from simple_history.admin import SimpleHistoryAdmin

from accounts.models import Tenant
from accounts.scoped_admin import (
    ScopedInlineMixin,
    TenantScopedAdminMixin,
    is_tenant_staff,
    scope_form_choices,
)
from accounts.services import user_can_manage
from billing.models import (
    DailyUsage,
    Plan,
    PlanItem,
    RollupRun,
    Statement,
    StatementLine,
    Subscription,
    TenantFailure,
    UsageAlert,
)
from billing.plans import can_sell, duplicate_meter_errors, duplicate_plan, subscribe, usable_plans
from usage_portal.api.inputs import CheckedJSONField


@admin.register(RollupRun)
class RollupRunAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    """What each rollup did; written by the rollup only, read by platform operators."""

    tenant_field = None

    list_display = (
        "started_at", "status", "trigger", "window_start", "window_end", "days_recomputed",
        "events_read", "rows_written", "duration_ms", "watermark",
    )  # fmt: skip
    list_filter = ("status", "trigger")
    readonly_fields = [f.name for f in RollupRun._meta.fields]

    def has_module_permission(self, request):
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        # Asked without an object while Django looks one up: answering yes lets a
        # row outside the user's scope end in the mixin's 404.
        if obj is None:
            return is_tenant_staff(request.user)
        return request.user.is_superuser

    def changelist_view(self, request, extra_context=None):
        if not request.user.is_superuser:
            raise PermissionDenied
        return super().changelist_view(request, extra_context)

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


class ThresholdsField(forms.CharField):
    """Percentages typed as "80, 100"; checked by the plans module like the API's."""

    def prepare_value(self, value):
        if isinstance(value, list):
            return ", ".join(str(v) for v in value)
        return value

    def to_python(self, value):
        text = super().to_python(value)
        return [part.strip() for part in text.split(",") if part.strip()]


class PlanItemForm(forms.ModelForm):
    thresholds = ThresholdsField(
        required=False, help_text="Percent of the limit (or of the included quantity), e.g. 80, 100"
    )

    class Meta:
        model = PlanItem
        fields = [
            "meter", "included_quantity", "limit", "overage_policy", "unit_price", "tiers",
            "thresholds",
        ]  # fmt: skip
        widgets = {"tiers": forms.Textarea(attrs={"rows": 2, "cols": 48})}
        field_classes = {"tiers": CheckedJSONField}


class PlanItemFormSet(forms.BaseInlineFormSet):
    def clean(self):
        super().clean()
        forms_in_use = [
            f for f in self.forms if f.cleaned_data and not f.cleaned_data.get("DELETE")
        ]
        duplicates = duplicate_meter_errors([f.cleaned_data.get("meter") for f in forms_in_use])
        for index, message in duplicates.items():
            forms_in_use[index].add_error("meter", message)


class PlanItemInline(ScopedInlineMixin, admin.TabularInline):
    model = PlanItem
    form = PlanItemForm
    formset = PlanItemFormSet
    extra = 1

    # Items are part of the plan: whoever may change the plan may change its items
    # (membership roles, not Django's model permissions).
    def plan_writable(self, request, obj) -> bool:
        if obj is None:
            return request.user.is_superuser or Tenant.objects.managed_by(request.user).exists()
        return user_can_manage(request.user, obj.owner)

    def has_view_permission(self, request, obj=None):
        return True

    def has_add_permission(self, request, obj=None):
        return self.plan_writable(request, obj)

    def has_change_permission(self, request, obj=None):
        return self.plan_writable(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self.plan_writable(request, obj)


class ScopedHistoryAdmin(TenantScopedAdminMixin, SimpleHistoryAdmin):
    """Past versions answer 404 where the history list does (simple-history would
    fall back to the stored record and answer 403)."""

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        self.history_or_404(request, object_id)
        return super().history_form_view(request, object_id, version_id, extra_context)


@admin.register(Plan)
class PlanAdmin(ScopedHistoryAdmin):
    """Plans with their items in one form; reseller staff edit their own and see,
    read-only, the plans they are subscribed to (as the API shows them)."""

    tenant_field = "owner"
    inlines = [PlanItemInline]
    list_display = ("code", "name", "owner", "customer", "currency", "base_fee", "is_active")
    list_filter = ("is_active", "currency")
    search_fields = ("code", "name", "owner__name", "customer__name")
    list_select_related = ("owner", "customer")
    readonly_fields = ("item_changes",)
    actions = ["duplicate_for_customer"]

    def get_readonly_fields(self, request, obj=None):
        frozen = ("code", "owner") if obj is not None else ()
        return (*frozen, *self.readonly_fields)

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if obj is not None and not self.has_change_permission(request, obj):
            # Who changed the items is the seller's record, like the history page.
            fields = [name for name in fields if name != "item_changes"]
        return fields

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "owner" and not request.user.is_superuser:
            kwargs["queryset"] = Tenant.objects.managed_by(request.user)
            kwargs["required"] = True
        elif db_field.name == "customer" and not request.user.is_superuser:
            kwargs["queryset"] = Tenant.objects.visible_to(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description="Item changes")
    def item_changes(self, obj):
        if obj is None or obj.pk is None:
            return "—"
        records = PlanItem.history.filter(plan_id=obj.pk).select_related("history_user", "meter")[
            :50
        ]
        return render_to_string("admin/billing/plan/item_changes.html", {"records": records})

    @admin.action(description="Duplicate as a custom plan for one customer")
    def duplicate_for_customer(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Choose exactly one plan to duplicate.", messages.WARNING)
            return None
        plan = queryset.get()
        if not user_can_manage(request.user, plan.owner):
            raise Http404
        form = DuplicatePlanForm(
            request.POST if "apply" in request.POST else None, plan=plan, user=request.user
        )
        scope_form_choices(form, request, self.admin_site)
        if form.is_valid():
            try:
                copy = duplicate_plan(plan, **form.cleaned_data)
            except ValidationError as error:
                form.add_error(None, error)
            else:
                self.message_user(request, f"Created custom plan {copy.code}.", messages.SUCCESS)
                return None
        context = {
            **self.admin_site.each_context(request),
            "title": f"Duplicate {plan.code} for one customer",
            "plan": plan,
            "form": form,
            "opts": self.model._meta,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/billing/plan/duplicate.html", context)


class DuplicatePlanForm(forms.Form):
    customer = forms.ModelChoiceField(queryset=Tenant.objects.none())
    code = forms.SlugField(max_length=64)
    name = forms.CharField(max_length=200, required=False)

    def __init__(self, *args, plan: Plan, user, **kwargs):
        super().__init__(*args, **kwargs)
        customers = Tenant.objects.visible_to(user).exclude(
            kind__in=[Tenant.Kind.PARTNER, Tenant.Kind.AGENT]
        )
        if plan.owner is not None:
            customers = customers.filter(
                tree_id=plan.owner.tree_id, lft__gt=plan.owner.lft, rght__lt=plan.owner.rght
            )
        self.fields["customer"].queryset = customers.order_by("name")
        self.fields["code"].initial = f"{plan.code}-custom"


class SubscriptionForm(forms.ModelForm):
    class Meta:
        model = Subscription
        fields = ["tenant", "plan", "starts_on", "ends_on"]


@admin.register(Subscription)
class SubscriptionAdmin(ScopedHistoryAdmin):
    """Subscriptions inside the staff member's subtrees; made by the plan's seller."""

    form = SubscriptionForm
    list_display = ("tenant", "plan", "starts_on", "ends_on")
    list_filter = ("plan",)
    search_fields = ("tenant__name", "tenant__slug", "plan__code")
    list_select_related = ("tenant", "plan")
    date_hierarchy = "starts_on"

    def get_readonly_fields(self, request, obj=None):
        return ("tenant", "plan", "starts_on") if obj is not None else ()

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "plan":
            kwargs["queryset"] = usable_plans(request.user)
        elif db_field.name == "tenant" and not request.user.is_superuser:
            kwargs["queryset"] = Tenant.objects.managed_by(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_change_permission(self, request, obj=None):
        if obj is None or request.user.is_superuser:
            return super().has_change_permission(request, obj)
        return is_tenant_staff(request.user) and can_sell(request.user, obj.plan)

    def save_model(self, request, obj, form, change):
        if change:
            obj.save()
        else:
            form.instance = subscribe(
                tenant=obj.tenant, plan=obj.plan, starts_on=obj.starts_on, ends_on=obj.ends_on
            )


class StatementLineInline(ScopedInlineMixin, admin.TabularInline):
    model = StatementLine
    extra = 0
    can_delete = False
    fields = ("meter", "plan_code", "starts_on", "ends_on", "used", "included", "overage",
              "unit_price", "tiers", "amount")  # fmt: skip
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ReadOnlyScopedAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Statement)
class StatementAdmin(ReadOnlyScopedAdmin):
    """Statements are computed (drafts) and then frozen (finals): read-only here."""

    inlines = [StatementLineInline]
    list_display = ("tenant", "period", "status", "currency", "base_fee", "usage_amount", "total",
                    "as_of")  # fmt: skip
    list_filter = ("status", "period", "currency")
    search_fields = ("tenant__name", "tenant__slug")
    list_select_related = ("tenant",)


@admin.register(UsageAlert)
class UsageAlertAdmin(ReadOnlyScopedAdmin):
    list_display = ("raised_at", "tenant", "meter", "percent", "period", "usage", "base",
                    "notified_to")  # fmt: skip
    list_filter = ("percent", "period", "plan_item__overage_policy")
    search_fields = ("tenant__name", "tenant__slug")
    list_select_related = ("tenant", "plan_item__meter")

    @admin.display(description="Meter", ordering="plan_item__meter__code")
    def meter(self, obj):
        return obj.plan_item.meter.code


@admin.register(TenantFailure)
class TenantFailureAdmin(ReadOnlyScopedAdmin):
    """Tenants a statement, finalization, alert or mail run could not handle. The runs
    went on for everyone else and retry these; a success removes the row."""

    list_display = ("last_failed_at", "tenant", "job", "attempts", "first_failed_at", "reason")
    list_filter = ("job",)
    search_fields = ("tenant__name", "tenant__slug")
    list_select_related = ("tenant",)
    readonly_fields = ("tenant", "job", "attempts", "first_failed_at", "last_failed_at", "error")

    # Tracebacks are the operator's business, not the tenants': tenant staff get 403 for
    # their own rows and, as everywhere, 404 for anyone else's.
    def has_module_permission(self, request):
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        # Asked without an object while Django looks one up: answering yes lets a
        # row outside the user's scope end in the mixin's 404.
        if obj is None:
            return is_tenant_staff(request.user)
        return request.user.is_superuser

    def changelist_view(self, request, extra_context=None):
        if not request.user.is_superuser:
            raise PermissionDenied
        return super().changelist_view(request, extra_context)

    @admin.display(description="Reason")
    def reason(self, obj):
        return obj.error.splitlines()[0] if obj.error else ""
