"""Webhooks in the admin: their tenant's managers add, change and disable them; the
deliveries list shows every event owed, with "Send again"."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from accounts.admin import TenantScopedAdminMixin
from accounts.models import Tenant
from accounts.scoped_admin import ScopedInlineMixin
from webhooks.delivery import send_again
from webhooks.models import EventType, Webhook, WebhookAttempt, WebhookDelivery
from webhooks.services import check
from webhooks.signing import new_secret


class WebhookForm(forms.ModelForm):
    url = forms.URLField(max_length=500, assume_scheme="https")
    events = forms.MultipleChoiceField(
        choices=EventType.choices, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = Webhook
        fields = ["tenant", "url", "events", "is_active"]

    def clean(self):
        cleaned = super().clean()
        if "url" in cleaned and "events" in cleaned:
            try:
                check(cleaned["url"], cleaned["events"])
            except ValidationError as error:
                for field, problems in error.message_dict.items():
                    self.add_error(field, problems)
        return cleaned


def managed_only(queryset, request, path: str):
    if request.user.is_superuser:
        return queryset
    return queryset.filter(**{f"{path}__in": Tenant.objects.managed_by(request.user)})


@admin.register(Webhook)
class WebhookAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    form = WebhookForm
    list_display = ("url", "tenant", "events", "is_active", "failing_since")
    list_filter = ("is_active",)
    readonly_fields = ("disabled_reason", "failing_since", "created_at")

    def get_queryset(self, request):
        # Endpoints are the managers' business, not every member's.
        return managed_only(super().get_queryset(request), request, "tenant")

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if "tenant" in form.base_fields and not request.user.is_superuser:
            # Only tenants the user manages, however much more they may see.
            field = form.base_fields["tenant"]
            field.queryset = field.queryset.filter(
                pk__in=Tenant.objects.managed_by(request.user).values("pk")
            )
        return form

    def save_model(self, request, obj, form, change):
        obj.events = sorted(set(obj.events))
        if not change:
            obj.secret, obj.created_by = new_secret(), request.user
        elif obj.is_active and "is_active" in form.changed_data:
            obj.failing_since, obj.disabled_reason = None, ""
        super().save_model(request, obj, form, change)
        if not change:
            messages.warning(
                request,
                f"The signing secret, shown only now: {obj.secret} — keep it with the receiver.",
            )


class AttemptInline(ScopedInlineMixin, admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    fields = readonly_fields = (
        "attempt", "created", "status_code", "duration_ms", "error", "response_excerpt",
        "next_attempt_at",
    )  # fmt: skip

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    tenant_field = "webhook__tenant"
    list_display = ("event", "event_type", "webhook", "state", "attempts", "next_attempt_at")
    list_filter = ("state",)
    list_select_related = ("webhook__tenant", "event")
    readonly_fields = ("webhook", "event", "state", "attempts", "next_attempt_at", "delivered_at")
    inlines = [AttemptInline]
    actions = ["send_again"]

    def get_queryset(self, request):
        return managed_only(super().get_queryset(request), request, "webhook__tenant")

    def tenant_of(self, delivery):
        return delivery.webhook.tenant

    @admin.display(description="Type")
    def event_type(self, delivery):
        return delivery.event.type

    def has_add_permission(self, request, obj=None):
        return False

    @admin.action(description="Send again now")
    def send_again(self, request, queryset):
        for delivery in queryset:
            send_again(delivery)
        self.message_user(request, f"{queryset.count()} deliveries queued.")
