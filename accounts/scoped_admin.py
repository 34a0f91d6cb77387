"""The admin's scoping, applied by base classes so no admin can forget it.

`TenantScopedAdminMixin` goes in front of every ModelAdmin of the project and
`ScopedInlineMixin` in front of every inline. Together they restrict, with the
one rule of `accounts.scoping.visible`:

- the changelist, change, history and delete pages (`get_queryset`), and with
  them raw-id popups and autocomplete, which Django serves from the related
  admin's `get_queryset`;
- every foreign-key and many-to-many choice list of every form the admin builds
  (add, change, inline, list-editable), whatever declared the field;
- every list filter that lists related objects or stored values.

What a user may pick or filter by, for a related model, is what that model's own
admin shows them (`related_choices`), so a plan appears in a filter exactly when
it appears in the plan changelist.

Every changelist counts its rows no further than a few pages past the page shown
(`utilities.admin_lists`): the event table holds millions.

Tenant fields listed in an admin's `autocomplete_fields` search tenants by name and
slug and label them by kind and path ("Cloudline Voice › Acme Dental › Ava (agent)",
as far up as the user sees), through the tenant admin's scoped autocomplete view.
"""

from django import forms
from django.contrib.admin import (
    AllValuesFieldListFilter,
    FieldListFilter,
    RelatedFieldListFilter,
    RelatedOnlyFieldListFilter,
)
from django.contrib.admin.exceptions import NotRegistered
from django.contrib.admin.utils import reverse_field_path, unquote
from django.contrib.admin.views.autocomplete import AutocompleteJsonView
from django.contrib.admin.widgets import AutocompleteSelect, ForeignKeyRawIdWidget
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured, PermissionDenied
from django.db.models import Q
from django.forms.models import ModelChoiceIterator
from django.http import Http404
from django.urls import reverse

from accounts.models import Tenant
from accounts.scoping import visible
from accounts.services import user_can_manage
from utilities.admin_lists import CountAheadPaginator, changelist_page


def is_tenant_staff(user) -> bool:
    return user.is_active and user.is_staff


def related_choices(model, request, admin_site):
    """The objects of `model` a user may pick or filter by: what its admin shows them.

    A model without a scoped admin falls back to the model's own rule, which
    hides it from everyone but superusers when it has none.
    """
    queryset = model._default_manager.all()
    try:
        related_admin = admin_site.get_model_admin(model)
    except NotRegistered:
        related_admin = None
    if isinstance(related_admin, TenantScopedAdminMixin):
        return related_admin.scoped(queryset, request)
    return visible(queryset, request.user)


def current_value_q(instance, name: str) -> Q:
    """The related objects a saved instance already points to through `name`.

    They stay selectable (the object is visible, so what it refers to is shown on
    its page anyway) even when they sit above the user's subtrees, like a
    reseller's partner. Initial values from the query string are not kept.
    """
    if instance is None or instance.pk is None:
        return Q(pk__in=[])
    try:
        field = instance._meta.get_field(name)
    except FieldDoesNotExist:  # a form field of its own, not a model field
        return Q(pk__in=[])
    if field.many_to_many and field.concrete:
        return Q(pk__in=getattr(instance, name).values("pk"))
    if (field.many_to_one or field.one_to_one) and field.concrete:
        return Q(**{field.remote_field.field_name: getattr(instance, field.attname)})
    return Q(pk__in=[])


def scope_form_choices(form, request, admin_site) -> None:
    """Restrict every model choice field of a built form to what the user may see."""
    instance = getattr(form, "instance", None)
    for name, field in form.fields.items():
        if not isinstance(field, forms.ModelChoiceField):
            continue
        if not request.user.is_superuser:
            allowed = related_choices(field.queryset.model, request, admin_site)
            field.queryset = field.queryset.filter(
                Q(pk__in=allowed.values("pk")) | current_value_q(instance, name)
            )
        widget = getattr(field.widget, "widget", field.widget)
        if isinstance(widget, ScopedRawIdWidget):
            widget.allowed = field.queryset


def scoped_form_class(form_class, request, admin_site):
    """`form_class` whose instances scope their choice lists once built."""

    class ScopedForm(form_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            scope_form_choices(self, request, admin_site)

    ScopedForm.__name__ = ScopedForm.__qualname__ = form_class.__name__
    return ScopedForm


class ScopedRawIdWidget(ForeignKeyRawIdWidget):
    """A raw-id input whose label names the chosen object only when it is in scope.

    Django looks the label up in the whole table, so a re-rendered form would
    show the name of whatever id was posted.
    """

    allowed = None

    def label_and_url_for_value(self, value):
        key = self.rel.get_related_field().name
        try:
            known = self.allowed is not None and self.allowed.filter(**{key: value}).exists()
        except (ValueError, TypeError):
            known = False
        return super().label_and_url_for_value(value) if known else ("", "")


def visible_paths(tenants, user) -> dict[int, list[Tenant]]:
    """Each tenant's ancestors that `user` sees, top first.

    Walks up by parent, one query per level (the tree is four levels deep); an
    ancestor the user does not see ends the walk, since everything above it is
    outside the user's subtrees too.
    """
    paths = {tenant.pk: [] for tenant in tenants}
    next_up = {tenant.pk: tenant.parent_id for tenant in tenants if tenant.parent_id}
    visible = Tenant.objects.visible_to(user).only("pk", "name", "parent_id")
    while next_up:
        found = visible.in_bulk(set(next_up.values()))
        climbing = {}
        for pk, parent_id in next_up.items():
            parent = found.get(parent_id)
            if parent is not None:
                paths[pk].insert(0, parent)
                if parent.parent_id:
                    climbing[pk] = parent.parent_id
        next_up = climbing
    return paths


def tenant_labels(tenants, user) -> dict[int, str]:
    """Each tenant's label by pk: "Cloudline Voice › Acme Dental › Ava (agent)"."""
    tenants = list(tenants)
    paths = visible_paths(tenants, user)
    return {
        tenant.pk: " › ".join([*(a.name for a in paths[tenant.pk]), tenant.name])
        + f" ({Tenant.Kind(tenant.kind).label.lower()})"
        for tenant in tenants
    }


class TenantChoiceIterator(ModelChoiceIterator):
    """Labels every listed tenant with a few queries, not a few per tenant."""

    def __iter__(self):
        tenants = list(self.queryset)
        self.field.labels = tenant_labels(tenants, self.field.user)
        if self.field.empty_label is not None:
            yield ("", self.field.empty_label)
        for tenant in tenants:
            yield self.choice(tenant)


class TenantChoiceField(forms.ModelChoiceField):
    """A tenant choice labelled by kind and path; `user` decides how far up the path goes."""

    iterator = TenantChoiceIterator
    user = None
    labels = None  # filled by the iterator for the tenants it lists

    def label_from_instance(self, obj):
        if self.labels and obj.pk in self.labels:
            return self.labels[obj.pk]
        return tenant_labels([obj], self.user)[obj.pk]


class TenantAutocompleteSelect(AutocompleteSelect):
    """Django's autocomplete input, asking the tenant admin's labelled autocomplete."""

    def get_url(self):
        return reverse(f"{self.admin_site.name}:accounts_tenant_autocomplete")


class TenantAutocompleteJsonView(AutocompleteJsonView):
    """Django's autocomplete answer for tenant fields, with kind-and-path labels.

    Candidates are what the tenant admin shows the user (scoping, as for every
    autocomplete) and what the field's own form would accept: its admin's choice list,
    narrowed to the kinds the admin declares for it in `tenant_kinds`.
    """

    def process_request(self, request):
        term, model_admin, source_field, to_field_name = super().process_request(request)
        if source_field.related_model is not Tenant:
            raise PermissionDenied  # Django's own answer to a malformed request
        return term, model_admin, source_field, to_field_name

    def get_queryset(self):
        tenants = super().get_queryset()
        accepted = self.accepted_tenants()
        return tenants if accepted is None else tenants.filter(pk__in=accepted.values("pk"))

    def accepted_tenants(self):
        try:
            source_admin = self.admin_site.get_model_admin(self.source_field.model)
        except NotRegistered:
            return None
        field = source_admin.formfield_for_foreignkey(self.source_field, self.request)
        if field is None:
            return None
        kinds = getattr(source_admin, "tenant_kinds", {}).get(self.source_field.name)
        return field.queryset.filter(kind__in=kinds) if kinds else field.queryset

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        self.labels = tenant_labels(context["object_list"], self.request.user)
        return context

    def serialize_result(self, obj, to_field_name):
        return {**super().serialize_result(obj, to_field_name), "text": self.labels[obj.pk]}


class ScopedChoicesMixin:
    """Choice lists of the forms an admin or inline builds, scoped."""

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        raw = db_field.name in self.raw_id_fields
        if raw and "widget" not in kwargs:
            kwargs["widget"] = ScopedRawIdWidget(
                db_field.remote_field, self.admin_site, using=kwargs.get("using")
            )
        tenant_autocomplete = db_field.related_model is Tenant and (
            db_field.name in self.get_autocomplete_fields(request)
        )
        if tenant_autocomplete and "widget" not in kwargs:
            kwargs["widget"] = TenantAutocompleteSelect(
                db_field, self.admin_site, using=kwargs.get("using")
            )
            kwargs.setdefault("form_class", TenantChoiceField)
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if isinstance(field, TenantChoiceField):
            field.user = request.user
        return field


class ScopedInlineMixin(ScopedChoicesMixin):
    """For every inline of a scoped admin: its forms' choices are scoped too."""

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        formset.form = scoped_form_class(formset.form, request, self.admin_site)
        return formset


class ScopedRelatedFieldListFilter(RelatedFieldListFilter):
    """The "By plan" or "By tenant" choices: only related objects the user may see."""

    def field_choices(self, field, request, model_admin):
        allowed = related_choices(field.related_model, request, model_admin.admin_site)
        return field.get_choices(
            include_blank=False,
            limit_choices_to=Q(pk__in=allowed.values("pk")),
            ordering=self.field_admin_ordering(field, request, model_admin),
        )


class ScopedRelatedOnlyFieldListFilter(RelatedOnlyFieldListFilter):
    def field_choices(self, field, request, model_admin):
        used = (
            model_admin.get_queryset(request)
            .distinct()
            .values_list(f"{self.field_path}__pk", flat=True)
        )
        allowed = related_choices(field.related_model, request, model_admin.admin_site)
        return field.get_choices(
            include_blank=False,
            limit_choices_to=Q(pk__in=used) & Q(pk__in=allowed.values("pk")),
            ordering=self.field_admin_ordering(field, request, model_admin),
        )


class ScopedAllValuesFieldListFilter(AllValuesFieldListFilter):
    """Stored values of a field reached through a relation (e.g. `tenant__currency`):
    Django reads them from the whole related table."""

    def __init__(self, field, request, params, model, model_admin, field_path):
        super().__init__(field, request, params, model, model_admin, field_path)
        parent_model, _ = reverse_field_path(model, field_path)
        if parent_model != model:
            allowed = related_choices(parent_model, request, model_admin.admin_site)
            self.lookup_choices = (
                allowed.distinct().order_by(field.name).values_list(field.name, flat=True)
            )


SCOPED_FILTERS = {
    RelatedFieldListFilter: ScopedRelatedFieldListFilter,
    RelatedOnlyFieldListFilter: ScopedRelatedOnlyFieldListFilter,
    AllValuesFieldListFilter: ScopedAllValuesFieldListFilter,
}


def scoped_filter_class(filter_class):
    if filter_class in SCOPED_FILTERS:
        return SCOPED_FILTERS[filter_class]
    if issubclass(filter_class, tuple(SCOPED_FILTERS.values())):
        return filter_class
    if issubclass(filter_class, tuple(SCOPED_FILTERS)):
        raise ImproperlyConfigured(
            f"{filter_class.__name__} lists objects of every tenant; derive it from "
            "ScopedRelatedFieldListFilter or ScopedAllValuesFieldListFilter instead."
        )
    return filter_class


def scoped_field_list_filter(field, request, params, model, model_admin, field_path):
    """The filter Django would pick for `field`, with its scoped variant substituted."""
    # Django's own registry of field filters (FieldListFilter.create walks it too).
    for test, filter_class in FieldListFilter._field_list_filters:
        if test(field):
            return scoped_filter_class(filter_class)(
                field, request, params, model, model_admin, field_path=field_path
            )
    raise ImproperlyConfigured(f"No list filter for {field_path}.")


def scoped_list_filter(entry):
    """One `list_filter` entry with its choices scoped. A SimpleListFilter class is
    kept: its lookups are the admin's own code."""
    if isinstance(entry, str):
        return (entry, scoped_field_list_filter)
    if isinstance(entry, (tuple, list)):
        path, filter_class = entry
        return (path, scoped_filter_class(filter_class))
    return entry


class TenantScopedAdminMixin(ScopedChoicesMixin):
    """The base of every ModelAdmin: scoping by tenant membership, not model permissions.

    Superusers may do anything. Other staff see objects inside their subtrees and
    change them where they are manager or admin. The model's own rule
    (`visible_to`) decides what is visible; a model without one names the path to
    its tenant in `tenant_field` ("" for Tenant itself), or `None` when only
    superusers may see it. `catalog = True` marks platform reference data (the
    meter catalog) that every staff member may read.
    """

    tenant_field = "tenant"
    catalog = False
    paginator = CountAheadPaginator

    def get_paginator(self, request, queryset, per_page, orphans=0, allow_empty_first_page=True):
        page = changelist_page(request)
        return self.paginator(queryset, per_page, orphans, allow_empty_first_page, page_number=page)

    def tenant_of(self, obj):
        return obj if not self.tenant_field else getattr(obj, self.tenant_field)

    def scoped(self, queryset, request):
        if self.catalog:
            return queryset
        return visible(queryset, request.user, self.tenant_field)

    def get_queryset(self, request):
        return self.scoped(super().get_queryset(request), request)

    def get_list_filter(self, request):
        return [scoped_list_filter(entry) for entry in super().get_list_filter(request)]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        return scoped_form_class(form, request, self.admin_site)

    def get_changelist_form(self, request, **kwargs):
        form = super().get_changelist_form(request, **kwargs)
        return scoped_form_class(form, request, self.admin_site)

    def get_inline_instances(self, request, obj=None):
        inlines = super().get_inline_instances(request, obj)
        for inline in inlines:
            if not isinstance(inline, ScopedInlineMixin):
                raise ImproperlyConfigured(
                    f"{type(inline).__name__} must derive from ScopedInlineMixin."
                )
        return inlines

    def history_or_404(self, request, object_id) -> None:
        """Who changed an object is its editors' record: outside superusers, only those
        who may change it see its history (a reseller never learns its partner's staff
        from its wholesale plan)."""
        if request.user.is_superuser:
            return
        obj = self.get_object(request, unquote(object_id))
        if obj is None or not self.has_change_permission(request, obj):
            raise Http404

    def history_view(self, request, object_id, extra_context=None):
        self.history_or_404(request, object_id)
        return super().history_view(request, object_id, extra_context)

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
            or self.scoped(self.model._default_manager.all(), request).filter(pk=obj.pk).exists()
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
