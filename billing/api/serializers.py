"""Plans, subscriptions, statements, margin, alerts and entitlements as the API shows them.

Validation is the plans module's (the same the admin runs); these classes only
map fields and call it. Money is a decimal string in its currency's minor units
(`billing.money.money_string`); quantities keep their stored places.
"""

from decimal import Decimal

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from accounts.models import Tenant
from billing.models import (
    Plan,
    PlanItem,
    Statement,
    StatementLine,
    Subscription,
    UsageAlert,
)
from billing.money import money_string
from billing.plan_rules import clean_plan_item, duplicate_meter_errors, plan_errors
from metering.models import Meter
from utilities.api.serializers import FrozenFieldsMixin

DECIMAL = {"max_digits": 20, "decimal_places": 6, "coerce_to_string": True}
# Before any statement there is no currency; the amounts are then zero.
FALLBACK_CURRENCY = "USD"


def with_money(data: dict, names, currency: str | None) -> dict:
    """`data` with its amounts `names` written in `currency`'s minor units: "500.000"
    becomes "500.00" (USD), "500" (JPY) or stays "500.000" (KWD)."""
    for name in names:
        if data.get(name) is not None:
            data[name] = money_string(Decimal(data[name]), currency or FALLBACK_CURRENCY)
    return data


class MoneyFieldsMixin:
    """Writes `money_fields` in the currency of the object (`currency_of`); input is
    read and validated as before."""

    money_fields: tuple[str, ...] = ()

    def currency_of(self, instance) -> str | None:
        return instance.currency

    def to_representation(self, instance):
        data = super().to_representation(instance)
        return with_money(data, self.money_fields, self.currency_of(instance))


class PlanItemSerializer(MoneyFieldsMixin, serializers.ModelSerializer):
    meter = serializers.SlugRelatedField(slug_field="code", queryset=Meter.objects.all())
    tiers = serializers.JSONField(
        required=False,
        help_text="[{up_to, unit_price, flat_fee}]: up_to counts overage units, inclusive; "
        "the last tier is open (up_to null); flat_fee defaults to 0",
    )
    dimension = serializers.CharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        max_length=256,
        help_text="A value of the meter's grouping attribute; null: every value no other "
        "item of the meter names.",
    )
    thresholds = serializers.JSONField(required=False, help_text="percentages, e.g. [80, 100]")

    money_fields = ("unit_price",)

    def currency_of(self, instance) -> str:
        return instance.plan.currency

    class Meta:
        model = PlanItem
        fields = [
            "meter",
            "dimension",
            "charge_model",
            "package_size",
            "included_quantity",
            "limit",
            "overage_policy",
            "unit_price",
            "tiers",
            "thresholds",
        ]

    def validate(self, attrs):
        try:
            cleaned = clean_plan_item(
                meter=attrs.get("meter"),
                dimension=attrs.get("dimension"),
                charge_model=attrs.get("charge_model", PlanItem.ChargeModel.GRADUATED),
                package_size=attrs.get("package_size"),
                included_quantity=attrs.get("included_quantity", 0),
                limit=attrs.get("limit"),
                overage_policy=attrs.get("overage_policy", PlanItem.OveragePolicy.CHARGE),
                unit_price=attrs.get("unit_price", 0),
                tiers=attrs.get("tiers", []),
                thresholds=attrs.get("thresholds", []),
            )
        except DjangoValidationError as error:
            raise serializers.ValidationError(error.message_dict) from None
        return {**attrs, **cleaned}


class PlanSerializer(MoneyFieldsMixin, FrozenFieldsMixin, serializers.ModelSerializer):
    owner = serializers.SlugRelatedField(
        slug_field="slug", queryset=Tenant.objects.none(), allow_null=True, required=False
    )
    customer = serializers.SlugRelatedField(
        slug_field="slug", queryset=Tenant.objects.none(), allow_null=True, required=False
    )
    items = PlanItemSerializer(many=True, required=False)

    frozen_fields = ("code", "owner")
    frozen_message = "cannot be changed once the plan exists."
    money_fields = ("base_fee", "minimum_commitment")

    class Meta:
        model = Plan
        fields = [
            "code",
            "name",
            "owner",
            "customer",
            "currency",
            "base_fee",
            "minimum_commitment",
            "billing_period",
            "description",
            "is_active",
            "copy_statements_to_owner",
            "items",
        ]
        extra_kwargs = {"code": {"validators": []}, "billing_period": {"read_only": True}}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            # Tenants outside the caller's view read as "does not exist".
            visible = Tenant.objects.visible_to(request.user)
            self.fields["owner"].queryset = visible
            self.fields["customer"].queryset = visible

    def validate(self, attrs):
        attrs = super().validate(attrs)

        def current(name, default=None):
            return attrs.get(name, getattr(self.instance, name, default))

        errors = plan_errors(
            owner=current("owner"),
            customer=current("customer"),
            currency=current("currency", "USD"),
            base_fee=current("base_fee"),
            minimum_commitment=current("minimum_commitment"),
        )
        duplicates = duplicate_meter_errors(
            [(i.get("meter"), i.get("dimension")) for i in attrs.get("items") or []]
        )
        if duplicates:
            errors["items"] = [
                {"meter": [duplicates[i]]} if i in duplicates else {}
                for i in range(len(attrs["items"]))
            ]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class SubscriptionSerializer(FrozenFieldsMixin, serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", queryset=Tenant.objects.none())
    plan = serializers.SlugRelatedField(slug_field="code", queryset=Plan.objects.none())

    frozen_fields = ("tenant", "plan", "starts_on")
    frozen_message = "cannot be changed; end this subscription and start another."

    class Meta:
        model = Subscription
        fields = ["id", "tenant", "plan", "starts_on", "ends_on"]
        validators = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            self.fields["tenant"].queryset = Tenant.objects.visible_to(request.user)
            self.fields["plan"].queryset = Plan.objects.visible_to(request.user)


class StatementLineSerializer(MoneyFieldsMixin, serializers.ModelSerializer):
    meter = serializers.CharField(source="meter.code")
    plan = serializers.CharField(source="plan_code")

    money_fields = ("unit_price", "amount")

    def currency_of(self, instance) -> str:
        return instance.statement.currency

    class Meta:
        model = StatementLine
        fields = [
            "meter",
            "dimension",
            "charge_model",
            "plan",
            "starts_on",
            "ends_on",
            "used",
            "included",
            "overage",
            "unit_price",
            "tiers",
            "amount",
        ]


class StatementSerializer(MoneyFieldsMixin, serializers.ModelSerializer):
    tenant = serializers.CharField(source="tenant.slug")
    period = serializers.DateField(format="%Y-%m")
    lines = StatementLineSerializer(many=True)

    money_fields = ("base_fee", "usage_amount", "minimum_commitment", "true_up", "total")

    class Meta:
        model = Statement
        fields = [
            "id",
            "number",
            "tenant",
            "period",
            "status",
            "currency",
            "base_fee",
            "usage_amount",
            "minimum_commitment",
            "true_up",
            "total",
            "as_of",
            "finalized_at",
            "lines",
        ]


class UsageAlertSerializer(serializers.ModelSerializer):
    tenant = serializers.CharField(source="tenant.slug")
    meter = serializers.CharField(source="plan_item.meter.code")
    plan = serializers.CharField(source="plan_item.plan.code")
    policy = serializers.CharField(source="plan_item.overage_policy")
    period = serializers.DateField(format="%Y-%m")

    class Meta:
        model = UsageAlert
        fields = [
            "id",
            "tenant",
            "meter",
            "plan",
            "policy",
            "percent",
            "period",
            "usage",
            "base",
            "raised_at",
        ]


class MarginRowSerializer(serializers.Serializer):
    meter = serializers.CharField(help_text='A meter code, or "base_fee".')
    retail = serializers.DecimalField(max_digits=20, decimal_places=3)
    wholesale = serializers.DecimalField(max_digits=20, decimal_places=3)
    margin = serializers.DecimalField(max_digits=20, decimal_places=3)


class CustomerMarginSerializer(serializers.Serializer):
    tenant = serializers.CharField(source="tenant.slug")
    retail = serializers.DecimalField(
        max_digits=20, decimal_places=3, help_text="What the seller bills this customer."
    )
    wholesale_share = serializers.DecimalField(
        max_digits=20,
        decimal_places=3,
        help_text="The seller's wholesale attributed to this customer: meter lines by its "
        "usage share, the base fee by its share of retail.",
    )
    margin = serializers.DecimalField(max_digits=20, decimal_places=3)


class MarginSerializer(serializers.Serializer):
    tenant = serializers.SerializerMethodField(help_text="The seller's slug; null: the platform.")
    period = serializers.DateField(format="%Y-%m")
    currency = serializers.CharField(allow_null=True)
    retail = serializers.DecimalField(max_digits=20, decimal_places=3)
    wholesale = serializers.DecimalField(max_digits=20, decimal_places=3)
    margin = serializers.DecimalField(max_digits=20, decimal_places=3)
    customer_statements = serializers.IntegerField()
    excluded_statements = serializers.IntegerField(
        help_text="Customer statements in another currency than the wholesale one, left out."
    )
    results = MarginRowSerializer(many=True, source="rows")
    customers = CustomerMarginSerializer(many=True)

    def get_tenant(self, margin) -> str | None:
        return margin.tenant.slug if margin.tenant is not None else None

    def to_representation(self, margin):
        data = super().to_representation(margin)
        amounts = ("retail", "wholesale", "margin")
        with_money(data, amounts, margin.currency)
        for row in data["results"]:
            with_money(row, amounts, margin.currency)
        for row in data["customers"]:
            with_money(row, ("retail", "wholesale_share", "margin"), margin.currency)
        return data


class EntitlementSerializer(serializers.Serializer):
    tenant = serializers.CharField(source="tenant.slug")
    meter = serializers.CharField(source="meter.code")
    dimension = serializers.CharField(
        allow_null=True, help_text="The dimension of the plan item that answered; null: all."
    )
    allowed = serializers.BooleanField()
    used = serializers.DecimalField(max_digits=28, decimal_places=6)
    limit = serializers.DecimalField(allow_null=True, **DECIMAL)
    remaining = serializers.DecimalField(allow_null=True, **DECIMAL)
    policy = serializers.CharField(allow_null=True)
    subscription_tenant = serializers.SerializerMethodField()

    def get_subscription_tenant(self, obj) -> str | None:
        return obj.subscription.tenant.slug if obj.subscription else None
