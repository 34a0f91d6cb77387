from rest_framework import serializers

from accounts.models import Tenant


class TenantSerializer(serializers.ModelSerializer):
    """A tenant as integrations see it; `parent` is the parent's slug."""

    parent = serializers.SlugRelatedField(
        slug_field="slug",
        queryset=Tenant.objects.none(),
        allow_null=True,
        required=False,
    )

    class Meta:
        model = Tenant
        fields = ["slug", "name", "kind", "parent", "external_id", "is_active"]
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

    def validate(self, attrs):
        if self.instance is not None:
            frozen = {
                field: "cannot be changed once the tenant exists."
                for field in ("slug", "kind")
                if field in attrs and attrs[field] != getattr(self.instance, field)
            }
            if frozen:
                raise serializers.ValidationError(
                    {field: f"The {field} {reason}" for field, reason in frozen.items()}
                )
        return attrs
