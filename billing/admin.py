"""Billing in the admin: plans (items inline, history kept), subscriptions, and
read-only views of what the services compute — all scoped by tenant.

Amounts and quantities appear as people write them wherever the admin shows them
(change lists, read-only pages, history): see `billing.forms.value_text`.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError
from django.http import Http404, HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from simple_history.admin import SimpleHistoryAdmin
from simple_history.models import DeletedObject
from simple_history.template_utils import HistoricalRecordContextHelper

from accounts.models import Tenant, subtrees_q
from accounts.scoped_admin import (
    ScopedInlineMixin,
    TenantChoiceField,
    TenantScopedAdminMixin,
    is_tenant_staff,
    scope_form_choices,
)
from accounts.services import user_can_manage
from billing.forms import (
    NONE_TEXT,
    NewSubscriptionForm,
    PlanForm,
    PlanItemForm,
    PlanItemFormSet,
    SubscriptionForm,
    value_text,
)
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
from billing.plan_rules import PLAN_OWNER_KINDS
from billing.plans import duplicate_plan, subscribe
from billing.selectors import can_sell, usable_plans


def shown(name: str, description: str):
    """An admin column or read-only field showing `name` as people write it."""

    @admin.display(description=description, ordering=name)
    def text(self, obj):
        return value_text(obj, name)

    return text


class PlainReadOnlyMixin:
    """Where the user may only view, each field in `plain_fields` shows through its
    `<name>_text` display (see `shown`) instead of Django's raw rendering of the value
    ("1.00000000", "None")."""

    plain_fields = ()
    empty_value_display = NONE_TEXT

    def plain_name(self, name):
        return f"{name}_text" if name in self.plain_fields else name

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if self.has_change_permission(request, obj):
            return fieldsets

        def plain(entry):
            if isinstance(entry, (tuple, list)):
                return tuple(self.plain_name(name) for name in entry)
            return self.plain_name(entry)

        # Once swapped, a field and its display (listed among the read-only fields
        # below) are one entry.
        return [
            (title, {**options, "fields": list(dict.fromkeys(map(plain, options["fields"])))})
            for title, options in fieldsets
        ]

    def get_readonly_fields(self, request, obj=None):
        readonly = super().get_readonly_fields(request, obj)
        if self.has_change_permission(request, obj):
            return readonly
        # Named here too, so the form left for a view-only page leaves them out.
        return [*readonly, *(self.plain_name(name) for name in self.plain_fields)]


class OperatorOnlyMixin:
    """Rows for the platform operator only: tenant staff get 403 for their own rows
    (tracebacks and run details are the operator's business) and, as everywhere,
    404 for anyone else's."""

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


@admin.register(RollupRun)
class RollupRunAdmin(OperatorOnlyMixin, TenantScopedAdminMixin, admin.ModelAdmin):
    """What each rollup did; written by the rollup only, read by platform operators."""

    tenant_field = None

    list_display = (
        "started_at", "status", "trigger", "window_start", "window_end", "days_recomputed",
        "events_read", "rows_written", "duration_ms", "watermark",
    )  # fmt: skip
    list_filter = ("status", "trigger")
    readonly_fields = [f.name for f in RollupRun._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(DailyUsage)
class DailyUsageAdmin(PlainReadOnlyMixin, TenantScopedAdminMixin, admin.ModelAdmin):
    """The tenant billing table, read-only (the rollup owns it)."""

    list_display = ("tenant", "meter", "day", "dimension", "source", "quantity_text",
                    "event_count")  # fmt: skip
    plain_fields = ("quantity",)
    quantity_text = shown("quantity", "Quantity")
    list_filter = ("meter__category", "source", "meter")
    search_fields = ("tenant__slug", "tenant__name")
    date_hierarchy = "day"
    list_select_related = ("tenant", "meter")
    show_full_result_count = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class PlanItemInline(PlainReadOnlyMixin, ScopedInlineMixin, admin.StackedInline):
    model = PlanItem
    form = PlanItemForm
    formset = PlanItemFormSet
    # One blank item to fill in without scripts; left untouched, it is ignored.
    extra = 1
    fieldsets = [
        (None, {"fields": [("meter", "dimension"), ("overage_policy", "charge_model"),
                           ("included_quantity", "limit"), ("unit_price", "package_size"),
                           "tiers", "thresholds"]}),
    ]  # fmt: skip
    plain_fields = ("included_quantity", "limit", "unit_price", "tiers", "thresholds")
    included_quantity_text = shown("included_quantity", "Included quantity")
    limit_text = shown("limit", "Limit")
    unit_price_text = shown("unit_price", "Unit price")
    tiers_text = shown("tiers", "Tiers")
    thresholds_text = shown("thresholds", "Thresholds")

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


class PlainHistoryHelper(HistoricalRecordContextHelper):
    """Changes in the history written as people write them: "—" for none, amounts to
    the currency's minor units, tiers and thresholds in words."""

    def prepare_delta_change_value(self, change, value):
        if isinstance(value, DeletedObject) and value.pk is None:
            value = None  # an empty foreign key, which simple-history calls deleted
        return value_text(self.record, change.field, value)


class ScopedHistoryAdmin(TenantScopedAdminMixin, SimpleHistoryAdmin):
    """Past versions answer 404 where the history list does (simple-history would
    fall back to the stored record and answer 403)."""

    object_history_list_template = "admin/billing/object_history_list.html"
    empty_value_display = NONE_TEXT

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        self.history_or_404(request, object_id)
        return super().history_form_view(request, object_id, version_id, extra_context)

    def get_historical_record_context_helper(self, request, historical_record):
        return PlainHistoryHelper(self.model, historical_record)


ITEM_CHANGE_FIELDS = ("included_quantity", "limit", "unit_price", "tiers", "thresholds")


def item_change_rows(records) -> list[dict]:
    """Plan item history records as the "Item changes" table shows them."""
    return [
        {
            "when": record.history_date,
            "who": record.history_user or NONE_TEXT,
            "change": record.get_history_type_display(),
            "meter": record.meter.code if record.meter_id else NONE_TEXT,
            "policy": record.get_overage_policy_display(),
            **{name: value_text(record, name) for name in ITEM_CHANGE_FIELDS},
        }
        for record in records
    ]


@admin.register(Plan)
class PlanAdmin(PlainReadOnlyMixin, ScopedHistoryAdmin):
    """Plans with their items in one form; reseller staff edit their own and see,
    read-only, the plans they are subscribed to (as the API shows them)."""

    tenant_field = "owner"
    form = PlanForm
    inlines = [PlanItemInline]
    autocomplete_fields = ("owner", "customer")
    # The owner autocomplete offers only the kinds that sell plans; the plans module
    # refuses any other with its own message.
    tenant_kinds = {"owner": PLAN_OWNER_KINDS}
    list_display = ("code", "name", "owner", "customer", "currency", "base_fee_text",
                    "is_active")  # fmt: skip
    fields = ("code", "name", "owner", "customer", "currency", "base_fee", "minimum_commitment",
              "billing_period", "description", "is_active", "copy_statements_to_owner",
              "item_changes")  # fmt: skip
    list_filter = ("is_active", "currency")
    search_fields = ("code", "name", "owner__name", "customer__name")
    list_select_related = ("owner", "customer")
    readonly_fields = ("item_changes",)
    actions = ["duplicate_for_customer"]
    plain_fields = ("base_fee", "minimum_commitment")
    base_fee_text = shown("base_fee", "Base fee")
    minimum_commitment_text = shown("minimum_commitment", "Minimum commitment")

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
        records = PlanItem.history.filter(plan_id=obj.pk).select_related(
            "history_user", "meter", "plan"
        )[:50]
        return render_to_string(
            "admin/billing/plan/item_changes.html", {"rows": item_change_rows(records)}
        )

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
    customer = TenantChoiceField(queryset=Tenant.objects.none())
    code = forms.SlugField(max_length=64)
    name = forms.CharField(max_length=200, required=False)

    def __init__(self, *args, plan: Plan, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["customer"].user = user
        customers = Tenant.objects.visible_to(user).exclude(
            kind__in=[Tenant.Kind.PARTNER, Tenant.Kind.AGENT]
        )
        if plan.owner is not None:
            customers = customers.filter(subtrees_q([plan.owner])).exclude(pk=plan.owner.pk)
        self.fields["customer"].queryset = customers.order_by("name")
        self.fields["code"].initial = f"{plan.code}-custom"


def subscription_ended_by(tenant: Tenant, starts_on):
    """The open subscription `plans.subscribe` ends the day before `starts_on` (one
    that started earlier), read before it does so the admin can say what happened."""
    return (
        Subscription.objects.filter(tenant=tenant, ends_on__isnull=True, starts_on__lt=starts_on)
        .select_related("plan")
        .first()
    )


def plan_change_message(ended: Subscription, started: Subscription) -> str:
    proration = (
        "base fees prorated by day"
        if started.starts_on.day != 1
        else "the change falls on the 1st, so no base fee is prorated"
    )
    return (
        f"{started.tenant.name}'s subscription to {ended.plan} ended on {ended.ends_on}; "
        f"{started.plan} starts {started.starts_on}; {proration}."
    )


@admin.register(Subscription)
class SubscriptionAdmin(ScopedHistoryAdmin):
    """Subscriptions inside the staff member's subtrees; made by the plan's seller.
    Adding one is the API's `subscribe`: a running subscription ends the day before."""

    form = SubscriptionForm
    autocomplete_fields = ("tenant",)
    list_display = ("tenant", "plan", "starts_on", "ends_on_text")
    ends_on_text = shown("ends_on", "Ends on")
    list_filter = ("plan",)
    search_fields = ("tenant__name", "tenant__slug", "plan__code")
    list_select_related = ("tenant", "plan")
    date_hierarchy = "starts_on"

    def get_readonly_fields(self, request, obj=None):
        return ("tenant", "plan", "starts_on") if obj is not None else ()

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = NewSubscriptionForm
        return super().get_form(request, obj, change=change, **kwargs)

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

    def add_view(self, request, form_url="", extra_context=None):
        try:
            return super().add_view(request, form_url, extra_context)
        except SubscriptionRaced:
            # The admin's transaction is rolled back by now: nothing was saved.
            self.message_user(request, SubscriptionRaced.message, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def save_model(self, request, obj, form, change):
        if change:
            obj.save()
            return
        ended = subscription_ended_by(obj.tenant, obj.starts_on)
        try:
            saved = subscribe(
                tenant=obj.tenant, plan=obj.plan, starts_on=obj.starts_on, ends_on=obj.ends_on
            )
        except (ValidationError, IntegrityError) as error:
            # Validated a moment ago: someone else changed these subscriptions since.
            raise SubscriptionRaced from error
        # The admin logs and links the object it passed in: make it the saved one.
        obj.pk = saved.pk
        obj.refresh_from_db()
        if ended is not None:
            ended.refresh_from_db()
            self.message_user(request, plan_change_message(ended, obj), messages.SUCCESS)


class SubscriptionRaced(Exception):
    message = (
        "Another change to this tenant's subscriptions was saved at the same moment, so "
        "nothing was saved. Check its subscriptions and try again."
    )


class StatementLineInline(ScopedInlineMixin, admin.TabularInline):
    model = StatementLine
    extra = 0
    can_delete = False
    fields = ("meter", "plan_code", "starts_on", "ends_on", "used_text", "included_text",
              "overage_text", "unit_price_text", "tiers_text", "amount_text")  # fmt: skip
    readonly_fields = fields
    used_text = shown("used", "Used")
    included_text = shown("included", "Included")
    overage_text = shown("overage", "Overage")
    unit_price_text = shown("unit_price", "Unit price")
    tiers_text = shown("tiers", "Tiers")
    amount_text = shown("amount", "Amount")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ReadOnlyScopedAdmin(PlainReadOnlyMixin, TenantScopedAdminMixin, admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Statement)
class StatementAdmin(ReadOnlyScopedAdmin):
    """Statements are computed (drafts) and then frozen (finals): read-only here."""

    inlines = [StatementLineInline]
    list_display = ("tenant", "period", "status", "number", "currency", "base_fee_text",
                    "usage_amount_text", "total_text", "as_of", "mailed_at")  # fmt: skip
    plain_fields = ("base_fee", "usage_amount", "total")
    base_fee_text = shown("base_fee", "Base fee")
    usage_amount_text = shown("usage_amount", "Usage amount")
    total_text = shown("total", "Total")
    list_filter = ("status", "period", "currency")
    search_fields = ("tenant__name", "tenant__slug", "number")
    list_select_related = ("tenant",)


@admin.register(UsageAlert)
class UsageAlertAdmin(ReadOnlyScopedAdmin):
    list_display = ("raised_at", "tenant", "meter", "percent", "period", "usage_text", "base_text",
                    "notified_to")  # fmt: skip
    plain_fields = ("usage", "base")
    usage_text = shown("usage", "Usage")
    base_text = shown("base", "Base")
    list_filter = ("percent", "period", "plan_item__overage_policy")
    search_fields = ("tenant__name", "tenant__slug")
    list_select_related = ("tenant", "plan_item__meter")

    @admin.display(description="Meter", ordering="plan_item__meter__code")
    def meter(self, obj):
        return obj.plan_item.meter.code


@admin.register(TenantFailure)
class TenantFailureAdmin(OperatorOnlyMixin, ReadOnlyScopedAdmin):
    """Tenants a statement, finalization, alert or mail run could not handle. The runs
    went on for everyone else and retry these; a success removes the row."""

    list_display = ("last_failed_at", "tenant", "job", "attempts", "first_failed_at", "reason")
    list_filter = ("job",)
    search_fields = ("tenant__name", "tenant__slug")
    list_select_related = ("tenant",)
    readonly_fields = ("tenant", "job", "attempts", "first_failed_at", "last_failed_at", "error")

    @admin.display(description="Reason")
    def reason(self, obj):
        return obj.error.splitlines()[0] if obj.error else ""
