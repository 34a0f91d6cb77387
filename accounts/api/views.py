from accounts.api.serializers import TenantSerializer
from accounts.api.viewsets import ScopedEditViewSet
from accounts.filtersets import TenantFilterSet
from accounts.models import Tenant
from accounts.services import create_tenant, update_tenant


class TenantViewSet(ScopedEditViewSet):
    """Tenants in the caller's subtrees; managers create and edit inside them."""

    queryset = Tenant.objects.select_related("parent")
    serializer_class = TenantSerializer
    filterset_class = TenantFilterSet
    lookup_field = "slug"
    lookup_value_regex = "[a-z0-9-]+"

    def perform_create(self, serializer):
        serializer.instance = create_tenant(user=self.request.user, **serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = update_tenant(
            user=self.request.user, tenant=serializer.instance, **serializer.validated_data
        )
