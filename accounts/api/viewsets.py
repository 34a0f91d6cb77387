"""The base of every API viewset over tenant-owned objects: it applies the one
scoping rule, so no viewset filters by hand and another tenant's object answers 404.
API views that are not querysets look tenants up with `visible_tenant_or_404`."""

from rest_framework import mixins, viewsets

from accounts.scoping import visible


class ScopedViewSetMixin:
    """`get_queryset` is the declared `queryset` restricted to what the caller may see.

    Viewsets declare `queryset` (with its joins and prefetches); narrowing by query
    parameters goes on top of `super().get_queryset()`. A model without a rule of
    its own names the path to its tenant in `tenant_field`.
    """

    tenant_field: str | None = None

    def get_queryset(self):
        return visible(super().get_queryset(), self.request.user, self.tenant_field)


class ScopedGenericViewSet(ScopedViewSetMixin, viewsets.GenericViewSet):
    pass


class ScopedReadOnlyModelViewSet(
    mixins.RetrieveModelMixin, mixins.ListModelMixin, ScopedGenericViewSet
):
    pass


class ScopedEditViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    ScopedGenericViewSet,
):
    """List, read, create and PATCH; never PUT or DELETE."""

    http_method_names = ["get", "post", "patch", "head", "options"]
