from rest_framework import serializers

from accounts.models import Tenant
from utilities.api.serializers import FrozenFieldsMixin


class TenantSerializer(FrozenFieldsMixin, serializers.ModelSerializer):
    """A tenant as integrations see it; `parent` is the parent's slug."""

    parent = serializers.SlugRelatedField(
        slug_field="slug",
        queryset=Tenant.objects.none(),
        allow_null=True,
        required=False,
    )

    frozen_fields = ("slug", "kind")
    frozen_message = "The {field} cannot be changed once the tenant exists."

    class Meta:
        model = Tenant
        fields = [
            "slug",
            "name",
            "kind",
            "parent",
            "external_id",
            "timezone",
            "currency",
            "is_active",
        ]
        extra_kwargs = {
            "external_id": {"required": False, "allow_null": True},
            # Model-level uniqueness is checked in full_clean by the service.
            "slug": {"validators": []},
        }
        validators = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            # A parent outside the caller's view reads as "does not exist".
            self.fields["parent"].queryset = Tenant.objects.visible_to(request.user)
