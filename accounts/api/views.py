from django.db import transaction

from accounts.api.serializers import TenantSerializer
from accounts.api.viewsets import ScopedEditViewSet
from accounts.brands import set_branding
from accounts.filtersets import TenantFilterSet
from accounts.models import Tenant
from accounts.services import create_tenant, update_tenant


class TenantViewSet(ScopedEditViewSet):
    """Tenants in the caller's subtrees; managers create and edit inside them."""

    queryset = Tenant.objects.select_related("parent", "brand").defer("brand__logo")
    serializer_class = TenantSerializer
    filterset_class = TenantFilterSet
    lookup_field = "slug"
    lookup_value_regex = "[a-z0-9-]+"

    def perform_create(self, serializer):
        fields, branding = self.split_branding(serializer.validated_data)
        with transaction.atomic():
            tenant = create_tenant(user=self.request.user, **fields)
            self.apply_branding(tenant, branding)
        serializer.instance = self.get_queryset().get(pk=tenant.pk)

    def perform_update(self, serializer):
        fields, branding = self.split_branding(serializer.validated_data)
        with transaction.atomic():
            tenant = update_tenant(user=self.request.user, tenant=serializer.instance, **fields)
            self.apply_branding(tenant, branding)
        serializer.instance = self.get_queryset().get(pk=tenant.pk)

    @staticmethod
    def split_branding(validated: dict) -> tuple[dict, tuple]:
        """The tenant's own fields, and the brand's changes: () when none were sent."""
        fields = dict(validated)
        branding = (fields.pop("brand"),) if "brand" in fields else ()
        return fields, branding

    def apply_branding(self, tenant: Tenant, branding: tuple) -> None:
        if branding:
            set_branding(user=self.request.user, tenant=tenant, branding=branding[0])
