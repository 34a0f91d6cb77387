from rest_framework import serializers

from accounts.brands import BRAND_KEYS, logo_src
from accounts.models import Brand, Tenant
from utilities.api.serializers import FrozenFieldsMixin


def brand_text(max_length: int):
    return serializers.CharField(
        max_length=max_length, required=False, allow_blank=True, allow_null=True
    )


class BrandingSerializer(serializers.Serializer):
    """A partner's or reseller's brand; every key optional, `null` or "" unsets one.
    The stored values are checked by the model (`Brand.clean`), on every write path."""

    name = brand_text(Brand._meta.get_field("name").max_length)
    primary_color = brand_text(7)
    logo_url = brand_text(Brand._meta.get_field("logo_url").max_length)
    support_email = brand_text(254)
    domain = brand_text(Brand._meta.get_field("domain").max_length)
    # The portal's own copy of the logo, and why the logo URL gave none.
    logo = serializers.SerializerMethodField()
    logo_problem = serializers.CharField(read_only=True)

    def get_logo(self, brand: Brand) -> str | None:
        src = logo_src(brand)
        request = self.context.get("request")
        return (request.build_absolute_uri(src) if request else src) if src else None

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                known = ", ".join(BRAND_KEYS)
                raise serializers.ValidationError(
                    {key: f"Unknown key; a brand has {known}." for key in unknown}
                )
        return super().to_internal_value(data)


class TenantSerializer(FrozenFieldsMixin, serializers.ModelSerializer):
    """A tenant as integrations see it; `parent` is the parent's slug."""

    parent = serializers.SlugRelatedField(
        slug_field="slug",
        queryset=Tenant.objects.none(),
        allow_null=True,
        required=False,
    )

    branding = BrandingSerializer(source="brand", allow_null=True, required=False)

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
            "branding",
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
