from rest_framework import mixins, viewsets

from accounts.api.serializers import TenantSerializer
from accounts.filtersets import TenantFilterSet
from accounts.models import Tenant
from accounts.services import create_tenant, update_tenant


class TenantViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Tenants in the caller's subtrees; managers create and edit inside them."""

    serializer_class = TenantSerializer
    filterset_class = TenantFilterSet
    lookup_field = "slug"
    lookup_value_regex = "[a-z0-9-]+"
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        return Tenant.objects.visible_to(self.request.user).select_related("parent")

    def perform_create(self, serializer):
        serializer.instance = create_tenant(user=self.request.user, **serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = update_tenant(
            user=self.request.user, tenant=serializer.instance, **serializer.validated_data
        )
