"""Admin for the tenant tree, memberships and API keys; scoped by the base classes
of `accounts.scoped_admin` like every admin of the project."""

from django import forms, http
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import path
from django.utils.html import format_html
from mptt.admin import DraggableMPTTAdmin
from rest_framework_api_key.models import APIKey as LibraryApiKey

from accounts.brands import logo_file_problem, logo_src, put_logo, queue_logo_fetch
from accounts.models import ApiKey, Brand, Membership, Tenant
from accounts.scoped_admin import (
    ScopedInlineMixin,
    TenantAutocompleteJsonView,
    TenantScopedAdminMixin,
    is_tenant_staff,
)
from accounts.services import (
    check_parent_allowed,
    check_seller_fields,
    tree_write_lock,
    user_can_manage,
)
from accounts.signals import deletion_blockers
from utilities.images import ACCEPTED

__all__ = ["TenantScopedAdminMixin", "is_tenant_staff"]


class TenantPartInline(ScopedInlineMixin):
    """An inline of a tenant's own parts (members, brand): staff see them, the
    tenant's managers change them."""

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser or is_tenant_staff(request.user)

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser or (obj is not None and user_can_manage(request.user, obj))

    has_add_permission = has_change_permission
    has_delete_permission = has_change_permission


class MembershipInline(TenantPartInline, admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ()

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "user" and not request.user.is_superuser:
            # Staff choose among people already inside their subtrees, never the
            # whole user table.
            managed = Tenant.objects.managed_by(request.user).values("pk")
            kwargs["queryset"] = (
                get_user_model().objects.filter(memberships__tenant__in=managed).distinct()
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class BrandAdminForm(forms.ModelForm):
    logo_url = forms.URLField(
        required=False,
        assume_scheme="https",
        max_length=Brand._meta.get_field("logo_url").max_length,
        label="Logo URL",
        help_text=Brand._meta.get_field("logo_url").help_text,
    )
    logo_file = forms.FileField(
        required=False,
        label="Upload a logo",
        help_text=f"{ACCEPTED}, up to {Brand.LOGO_MAX_BYTES // 1024} KB; replaces the logo URL's.",
    )
    remove_logo = forms.BooleanField(required=False, label="Remove the logo")

    class Meta:
        model = Brand
        fields = ["name", "primary_color", "logo_url", "support_email", "domain"]
        widgets = {"primary_color": forms.TextInput(attrs={"placeholder": "#1f6feb", "size": 8})}

    def clean_logo_file(self):
        upload = self.cleaned_data.get("logo_file")
        if upload is None:
            return None
        # One byte past the limit is enough to tell a file over it.
        data = upload.read(Brand.LOGO_MAX_BYTES + 1)
        problem = logo_file_problem(data)
        if problem:
            raise ValidationError(problem)
        return data

    def save(self, commit=True):
        brand = super().save(commit=False)
        url_changed = "logo_url" in self.changed_data
        if self.cleaned_data.get("logo_file"):
            put_logo(brand, self.cleaned_data["logo_file"])
            brand.logo_problem = ""
        elif self.cleaned_data.get("remove_logo") or url_changed:
            put_logo(brand, None)
            brand.logo_problem = ""
        if commit:
            brand.save()
        if url_changed and brand.logo_url and not self.cleaned_data.get("logo_file"):
            transaction.on_commit(lambda: queue_logo_fetch(brand.pk))
        return brand


class BrandInline(TenantPartInline, admin.StackedInline):
    """A partner's or reseller's brand, edited by its managers with the tenant."""

    model = Brand
    form = BrandAdminForm
    max_num = 1
    extra = 1
    fields = [
        "name",
        "primary_color",
        "logo_url",
        "logo_file",
        "current_logo",
        "remove_logo",
        "logo_problem",
        "support_email",
        "domain",
    ]
    readonly_fields = ["current_logo", "logo_problem"]

    @admin.display(description="Logo")
    def current_logo(self, brand):
        src = logo_src(brand) if brand and brand.pk else ""
        if not src:
            return "None"
        return format_html('<img src="{}" alt="Logo" style="max-height:40px">', src)


class TenantAdminForm(forms.ModelForm):
    class Meta:
        model = Tenant
        fields = [
            "name",
            "slug",
            "kind",
            "parent",
            "external_id",
            "timezone",
            "currency",
            "is_active",
        ]

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        if user is not None and not user.is_superuser and "parent" in self.fields:
            allowed = Tenant.objects.managed_by(user)
            if self.instance.pk and self.instance.parent_id:
                # Keep the current parent selectable even when it is outside the subtree.
                allowed = Tenant.objects.filter(pk=self.instance.parent_id) | allowed
            self.fields["parent"].queryset = allowed

    def clean(self):
        cleaned = super().clean()
        parent = cleaned.get("parent")
        moved = not self.instance.pk or parent != self.instance.parent
        if self.user is not None and moved and "parent" not in self.errors:
            try:
                check_parent_allowed(self.user, parent)
            except ValidationError as error:
                self.add_error(None, error)
        if self.user is not None and self.instance.pk:
            try:
                check_seller_fields(self.user, self.instance, cleaned)
            except ValidationError as error:
                self.add_error(None, error)
        return cleaned


@admin.register(Tenant)
class TenantAdmin(TenantScopedAdminMixin, DraggableMPTTAdmin):
    tenant_field = ""
    form = TenantAdminForm
    list_display = ("tree_actions", "indented_title", "kind", "slug", "external_id", "is_active")
    list_display_links = ("indented_title",)
    list_filter = ("kind", "is_active")
    search_fields = ("name", "slug", "external_id")
    prepopulated_fields = {"slug": ("name",)}
    inlines = [BrandInline, MembershipInline]
    mptt_level_indent = 18
    # django-mptt lists 2,000 rows a page for dragging across the whole tree; a row
    # takes ~1.5 ms to render, so the demo's 667 tenants took a second.
    list_per_page = 100

    def get_inline_instances(self, request, obj=None):
        # Only partners and resellers carry a brand; a new tenant gets one once saved.
        return [
            inline
            for inline in super().get_inline_instances(request, obj)
            if not isinstance(inline, BrandInline)
            or (obj is not None and obj.kind in Brand.BRANDED_KINDS)
        ]

    def get_form(self, request, obj=None, change=False, **kwargs):
        return bound_to_user(super().get_form(request, obj, change=change, **kwargs), request.user)

    def get_urls(self):
        # Tenant autocompletes of every admin ask here for their kind-and-path labels.
        autocomplete = TenantAutocompleteJsonView.as_view(admin_site=self.admin_site)
        return [
            path(
                "autocomplete/",
                self.admin_site.admin_view(autocomplete),
                name="accounts_tenant_autocomplete",
            ),
            *super().get_urls(),
        ]

    def save_model(self, request, obj, form, change):
        with tree_write_lock():
            super().save_model(request, obj, form, change)

    def get_deleted_objects(self, objs, request):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        return deleted, counts, perms_needed, [*protected, *deletion_blockers(objs)]

    def _move_node(self, request):
        """Refuse a drag that leaves the user's subtree or breaks the kind rules."""
        queryset = self.get_queryset(request)
        position = request.POST.get("position")
        try:
            cut_item = queryset.get(pk=request.POST.get("cut_item"))
            pasted_on = queryset.get(pk=request.POST.get("pasted_on"))
        except (Tenant.DoesNotExist, TypeError, ValueError):
            return super()._move_node(request)
        new_parent = pasted_on if position == "last-child" else pasted_on.parent
        problem = move_problem(request.user, cut_item, new_parent)
        if problem:
            self.message_user(request, problem, level=messages.ERROR)
            return http.HttpResponse("FAIL, move refused.")
        with tree_write_lock():
            return super()._move_node(request)


def bound_to_user(form_class, user):
    """`form_class` built with `user=user`, for forms whose rules depend on who edits."""

    class UserBoundForm(form_class):
        def __init__(self, *args, **inner):
            super().__init__(*args, user=user, **inner)

    return UserBoundForm


def move_problem(user, tenant: Tenant, new_parent: Tenant | None) -> str | None:
    """Why `user` may not move `tenant` under `new_parent`, or None when allowed."""
    if new_parent != tenant.parent:
        try:
            check_parent_allowed(user, new_parent)
        except ValidationError as error:
            return " ".join(error.messages)
    moved = Tenant.objects.get(pk=tenant.pk)
    moved.parent = new_parent
    return moved.parent_error()


@admin.register(Membership)
class MembershipAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    list_display = ("user", "tenant", "role")
    list_filter = ("role",)
    search_fields = ("user__username", "tenant__name", "tenant__slug")
    list_select_related = ("user", "tenant")

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if not request.user.is_superuser:
            if db_field.name == "tenant":
                kwargs["queryset"] = Tenant.objects.managed_by(request.user)
            elif db_field.name == "user":
                managed = Tenant.objects.managed_by(request.user).values("pk")
                kwargs["queryset"] = (
                    get_user_model().objects.filter(memberships__tenant__in=managed).distinct()
                )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


# Negative corrections lower the bills of every tenant above the event, so only
# platform operators hand this scope out.
OPERATOR_SCOPES = {ApiKey.Scope.CORRECT}


def scope_grant_problem(user, key: ApiKey, scopes, tenant: Tenant | None) -> str | None:
    """Why `user` may not give `key` these scopes on `tenant`, or None.

    Keeping a scope a key already holds on the same tenant is not a grant, so
    reseller staff can still rename or revoke a key an operator made.
    """
    if user.is_superuser:
        return None
    same_tenant = key.pk is not None and tenant is not None and key.tenant_id == tenant.pk
    held = set(key.scopes or []) if same_tenant else set()
    granted = (set(scopes) - held) & OPERATOR_SCOPES
    if granted:
        names = ", ".join(sorted(granted))
        return f"Only a platform operator (superuser) may grant the {names} scope."
    return None


class ApiKeyAdminForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=ApiKey.Scope.choices, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = ApiKey
        fields = ["name", "tenant", "scopes", "expiry_date", "revoked"]

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean(self):
        cleaned = super().clean()
        if self.user is not None and "scopes" in cleaned:
            problem = scope_grant_problem(
                self.user, self.instance, cleaned["scopes"], cleaned.get("tenant")
            )
            if problem:
                self.add_error("scopes", problem)
        return cleaned


@admin.register(ApiKey)
class ApiKeyAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    form = ApiKeyAdminForm
    list_display = ("name", "prefix", "tenant", "scopes", "created", "expiry_date", "revoked")
    list_filter = ("revoked",)
    search_fields = ("name", "prefix", "tenant__slug")
    list_select_related = ("tenant",)
    readonly_fields = ("prefix", "created")

    def get_form(self, request, obj=None, change=False, **kwargs):
        return bound_to_user(super().get_form(request, obj, change=change, **kwargs), request.user)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "tenant" and not request.user.is_superuser:
            kwargs["queryset"] = Tenant.objects.managed_by(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        if change:
            obj.save()
            return
        key = ApiKey.objects.assign_key(obj)
        obj.save()
        self.message_user(
            request,
            f"The API key for {obj.name} is: {key} — copy it now; it will not be shown again.",
            level=messages.WARNING,
        )


# The library registers its own unscoped key model; ours replaces it.
if admin.site.is_registered(LibraryApiKey):
    admin.site.unregister(LibraryApiKey)
