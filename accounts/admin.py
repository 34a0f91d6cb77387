"""Admin for the tenant tree, scoped for non-superuser staff by the one scoping rule."""

from django import forms, http
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.http import Http404
from mptt.admin import DraggableMPTTAdmin
from rest_framework_api_key.models import APIKey as LibraryApiKey

from accounts.models import ApiKey, Membership, Tenant
from accounts.services import check_parent_allowed, tree_write_lock, user_can_manage


def is_tenant_staff(user) -> bool:
    return user.is_active and user.is_staff


class TenantScopedAdminMixin:
    """Admin permissions from tenant membership instead of Django model permissions.

    Superusers may do anything. Other staff see objects inside their subtrees and
    change them where they are manager or admin. `tenant_field` names the path to
    the object's tenant ("" for Tenant itself).
    """

    tenant_field = "tenant"

    def tenant_of(self, obj):
        return obj if not self.tenant_field else getattr(obj, self.tenant_field)

    def scoped(self, queryset, request):
        if request.user.is_superuser:
            return queryset
        visible = Tenant.objects.visible_to(request.user).values("pk")
        lookup = f"{self.tenant_field}__in" if self.tenant_field else "pk__in"
        return queryset.filter(**{lookup: visible})

    def get_queryset(self, request):
        return self.scoped(super().get_queryset(request), request)

    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        # Django redirects to the index with "doesn't exist"; another tenant's
        # object must answer a plain 404 like everywhere else.
        raise Http404

    def has_module_permission(self, request):
        return request.user.is_superuser or (
            is_tenant_staff(request.user) and request.user.memberships.exists()
        )

    def has_view_permission(self, request, obj=None):
        if request.user.is_superuser:
            return True
        if not self.has_module_permission(request):
            return False
        return (
            obj is None
            or self.scoped(type(obj)._default_manager, request).filter(pk=obj.pk).exists()
        )

    def has_change_permission(self, request, obj=None):
        if request.user.is_superuser:
            return True
        if not is_tenant_staff(request.user):
            return False
        if obj is None:
            return Tenant.objects.managed_by(request.user).exists()
        return user_can_manage(request.user, self.tenant_of(obj))

    def has_add_permission(self, request, obj=None):
        return self.has_change_permission(request, None)

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


class MembershipInline(admin.TabularInline):
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

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser or is_tenant_staff(request.user)

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser or (obj is not None and user_can_manage(request.user, obj))

    has_add_permission = has_change_permission
    has_delete_permission = has_change_permission


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
    inlines = [MembershipInline]
    mptt_level_indent = 18

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change=change, **kwargs)
        user = request.user

        class UserBoundForm(form_class):
            def __init__(self, *args, **inner):
                super().__init__(*args, user=user, **inner)

        return UserBoundForm

    def save_model(self, request, obj, form, change):
        with tree_write_lock():
            super().save_model(request, obj, form, change)

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


class ApiKeyAdminForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=ApiKey.Scope.choices, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = ApiKey
        fields = ["name", "tenant", "scopes", "expiry_date", "revoked"]


@admin.register(ApiKey)
class ApiKeyAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    form = ApiKeyAdminForm
    list_display = ("name", "prefix", "tenant", "scopes", "created", "expiry_date", "revoked")
    list_filter = ("revoked",)
    search_fields = ("name", "prefix", "tenant__slug")
    list_select_related = ("tenant",)
    readonly_fields = ("prefix", "created")

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
