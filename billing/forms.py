"""Billing's forms: the usage question (shared by the usage API and the report pages),
and the admin's plan, plan item and subscription forms with the tier rows widget."""

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from functools import cache

from babel import Locale
from babel.numbers import get_currency_name, get_territory_currencies, list_currencies
from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ObjectDoesNotExist, ValidationError
from django.db import IntegrityError, transaction
from django.forms.models import construct_instance
from django.template.loader import render_to_string
from django.utils import timezone

from billing.models import Plan, PlanItem, Subscription
from billing.money import money_string
from billing.periods import month_of
from billing.plan_rules import (
    MAX_FEE,
    MAX_QUANTITY,
    MAX_UNIT_PRICE,
    PRICE_PLACES,
    QUANTITY_PLACES,
    bounded,
    clean_tiers,
    duplicate_meter_errors,
    parse_decimal,
)
from billing.plans import subscribe
from billing.usage import GROUP_BYS, UsageFilters
from metering.models import Meter, UsageEvent
from utilities.inputs import validate_supported_date

MAX_RANGE_DAYS = 400


def this_month_so_far():
    today = timezone.now().date()
    return month_of(today), today


class UsageQueryForm(forms.Form):
    tenant = forms.CharField(help_text="Tenant slug; the summary covers its subtree.")
    start = forms.DateField(
        required=False,
        help_text="First day (UTC); default: 1st of month.",
        validators=[validate_supported_date],
    )
    end = forms.DateField(
        required=False,
        help_text="Last day, inclusive; default: today.",
        validators=[validate_supported_date],
    )
    group_by = forms.ChoiceField(
        choices=[(g, g) for g in GROUP_BYS], required=False, initial="meter"
    )
    meter = forms.CharField(required=False, help_text="Meter code(s), comma-separated.")
    category = forms.ChoiceField(choices=[("", "Any"), *Meter.Category.choices], required=False)
    source = forms.ChoiceField(choices=[("", "Any"), *UsageEvent.Source.choices], required=False)
    dimension = forms.CharField(required=False, help_text="Only this dimension value.")

    def clean_meter(self):
        codes = tuple(c.strip() for c in self.cleaned_data["meter"].split(",") if c.strip())
        unknown = sorted(
            set(codes) - set(Meter.objects.filter(code__in=codes).values_list("code", flat=True))
        )
        if unknown:
            raise forms.ValidationError(f"Unknown meter(s): {', '.join(unknown)}.")
        return codes

    def clean(self):
        cleaned = super().clean()
        default_start, default_end = this_month_so_far()
        start = cleaned.get("start") or default_start
        end = cleaned.get("end") or max(default_end, start)
        if "start" in self.errors or "end" in self.errors:
            return cleaned
        if start > end:
            self.add_error("end", "The end date is before the start date.")
        elif end - start > timedelta(days=MAX_RANGE_DAYS):
            self.add_error("end", f"Ask for at most {MAX_RANGE_DAYS} days at a time.")
        cleaned["start"], cleaned["end"] = start, end
        cleaned["group_by"] = cleaned.get("group_by") or "meter"
        return cleaned

    def filters(self) -> UsageFilters:
        data = self.cleaned_data
        dimension = self.data.get("dimension")
        return UsageFilters(
            meters=data["meter"],
            category=data["category"],
            source=data["source"],
            dimension=dimension if dimension not in (None, "") else None,
        )


# --- Plans, items and subscriptions in the admin --------------------------------------
#
# Values are written as people write them: money to the currency's minor units (more
# places only when a price has them), quantities without trailing zeros, never an
# exponent, "—" for none. Forms, change lists, read-only pages and the history all
# go through `value_text`.

NONE_TEXT = "—"
DEFAULT_CURRENCY = "USD"


def as_decimal(value) -> Decimal | None:
    """`value` as a finite Decimal, or None when it is not one (text typed by a person)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


# Stored amounts and quantities have far fewer digits; a longer number is text someone
# typed (1e999999), shown as it came.
MAX_SHOWN_DIGITS = 40


def is_short(number: Decimal) -> bool:
    """Whether `number` written out in full (no exponent) stays short."""
    sign, digits, exponent = number.normalize().as_tuple()
    return max(len(digits), len(digits) + exponent, -exponent) <= MAX_SHOWN_DIGITS


def quantity_text(value) -> str:
    """1000.000000 → "1000", 0E-6 → "0", 1.50 → "1.5"."""
    number = as_decimal(value)
    if number is None or not is_short(number):
        return NONE_TEXT if value in (None, "") else str(value)
    return f"{number.normalize():f}" if number else "0"


def money_text(value, currency: str) -> str:
    """To the currency's minor units, more places only where the amount has them:
    1.00000000 → "1.00", 0.00012 → "0.00012", 0E-8 → "0.00"; JPY 10.000 → "10"."""
    number = as_decimal(value)
    if number is None or not is_short(number):
        return NONE_TEXT if value in (None, "") else str(value)
    return money_string(number, currency if currency in list_currencies() else DEFAULT_CURRENCY)


def tiers_text(tiers, currency: str) -> str:
    """Tiers in words: "up to 5000 at 0.05; above at 0.04 + 10.00 flat"."""
    if not tiers:
        return NONE_TEXT
    parts = []
    for tier in tiers:
        price = money_text(tier.get("unit_price"), currency)
        fee = as_decimal(tier.get("flat_fee"))
        flat = f" + {money_text(fee, currency)} flat" if fee else ""
        if tier.get("up_to") in (None, ""):
            parts.append(f"above at {price}{flat}" if parts else f"all at {price}{flat}")
        else:
            parts.append(f"up to {quantity_text(tier['up_to'])} at {price}{flat}")
    return "; ".join(parts)


def thresholds_text(thresholds, currency: str) -> str:
    return ", ".join(f"{percent}%" for percent in thresholds) if thresholds else NONE_TEXT


def quantity_field_text(value, currency: str) -> str:
    return quantity_text(value)


# Field name -> how its value is written; the currency is the object's (or its plan's).
FIELD_TEXT = {
    **dict.fromkeys(
        (
            "base_fee",
            "unit_price",
            "amount",
            "usage_amount",
            "total",
            "minimum_commitment",
            "true_up",
        ),
        money_text,
    ),  # fmt: skip
    **dict.fromkeys(
        ("included_quantity", "limit", "used", "included", "overage", "quantity", "usage", "base"),
        quantity_field_text,
    ),
    "tiers": tiers_text,
    "thresholds": thresholds_text,
}


def currency_of(obj) -> str:
    """The currency an object's amounts are in: its own, its plan's or its statement's."""
    for path in ("currency", "plan.currency", "statement.currency"):
        value = obj
        try:
            for step in path.split("."):
                value = getattr(value, step, None)
        except ObjectDoesNotExist:  # a history record whose plan is gone
            value = None
        if isinstance(value, str) and value:
            return value
    return DEFAULT_CURRENCY


def plain_text(value) -> str:
    """Any other value: "—" for none, yes/no, dates as ISO dates, names of objects."""
    if value is None or value == "":
        return NONE_TEXT
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return quantity_text(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


UNSET = object()


def value_text(obj, name: str, value=UNSET) -> str:
    """How a person writes `obj.<name>` (or `value`, an old value of that field)."""
    if value is UNSET:
        value = getattr(obj, name)
    text = FIELD_TEXT.get(name)
    if text is None:
        return plain_text(value)
    if value is None:
        return NONE_TEXT
    return text(value, currency_of(obj))


class PlainDecimalInput(forms.TextInput):
    """A decimal typed as text and shown as people write it; `text` formats a stored
    value (posted text is shown again as typed)."""

    def __init__(self, text, attrs=None):
        super().__init__({"inputmode": "decimal", "size": 12, **(attrs or {})})
        self.text = text
        self.currency = DEFAULT_CURRENCY

    def format_value(self, value):
        if isinstance(value, Decimal):
            return self.text(value, self.currency)
        return super().format_value(value)


def quantity_input():
    return PlainDecimalInput(quantity_field_text)


def money_input():
    return PlainDecimalInput(money_text)


@cache
def currency_choices() -> tuple[tuple[str, str], ...]:
    """ISO 4217 currencies in use today, as "EUR — Euro" (historic codes stay valid for
    plans that have one, see `PlanForm`)."""
    today = date.today()
    codes = set()
    for territory in Locale("en").territories:
        codes.update(get_territory_currencies(territory, today, tender=True))
    return tuple(
        (code, f"{code} — {get_currency_name(code, locale='en')}") for code in sorted(codes)
    )


class ThresholdsField(forms.CharField):
    """Percentages typed as "80, 100"; checked by the plans module like the API's."""

    def prepare_value(self, value):
        if isinstance(value, list):
            return ", ".join(str(v) for v in value)
        return value

    def to_python(self, value):
        if isinstance(value, list):
            return value
        text = super().to_python(value)
        return [part.strip() for part in text.split(",") if part.strip()]

    def has_changed(self, initial, data):
        # A new item's initial is None and its untouched input "": both mean none.
        return [str(v) for v in self.to_python(initial or [])] != self.to_python(data)


@dataclass(frozen=True)
class TierColumn:
    """One column of the tier rows: its key in a stored tier (and the API), its bounds,
    and how a stored value is written back."""

    key: str
    label: str
    name: str  # in messages: "Tier 2 unit price must be …"
    maximum: Decimal
    places: int
    text: Callable[[Decimal, str], str]
    required: bool = False
    placeholder: str = ""


# Tiers as rows; a column added here (and to `plan_rules.clean_tiers`) is a new
# input on every row, checked and shown the same way.
TIER_COLUMNS = (
    TierColumn(
        key="up_to",
        label="Up to (overage units)",
        name="up to",
        maximum=MAX_QUANTITY,
        places=QUANTITY_PLACES,
        text=quantity_field_text,
        placeholder="∞ (last tier)",
    ),
    TierColumn(
        key="unit_price",
        label="Unit price",
        name="unit price",
        maximum=MAX_UNIT_PRICE,
        places=PRICE_PLACES,
        text=money_text,
        required=True,
    ),
    TierColumn(
        key="flat_fee",
        label="Flat fee",
        name="flat fee",
        maximum=MAX_FEE,
        places=PRICE_PLACES,
        text=money_text,
        placeholder="0",
    ),
)
CELL_NAME = re.compile(r"(\d{1,4})-([a-z_]+)")


class PostedRows(list):
    """Tier rows as posted: shown again exactly as typed."""


class TierRowsWidget(forms.Widget):
    """One row of inputs per tier (`<name>-<row>-<column>`), a few blank rows below the
    tiers so the form works without scripts; tier-rows.js adds and removes rows."""

    template_name = "admin/billing/widgets/tier_rows.html"
    blank_rows = 2

    class Media:
        js = ("js/tier-rows.js",)
        css = {"all": ("css/tier-rows.css",)}

    def __init__(self, columns=TIER_COLUMNS, attrs=None):
        super().__init__(attrs)
        self.columns = columns
        self.currency = DEFAULT_CURRENCY

    def value_from_datadict(self, data, files, name):
        """The posted rows in order, blank rows left out (so "Tier 2" in a message is
        the second row shown again)."""
        keys = {column.key for column in self.columns}
        prefix, rows = f"{name}-", {}
        for key in data:
            match = CELL_NAME.fullmatch(key[len(prefix) :]) if key.startswith(prefix) else None
            if match and match[2] in keys:
                rows.setdefault(int(match[1]), {})[match[2]] = str(data.get(key, "")).strip()
        ordered = (rows[index] for index in sorted(rows))
        return PostedRows(row for row in ordered if any(row.values()))

    def value_omitted_from_data(self, data, files, name):
        return not any(key.startswith(f"{name}-") for key in data)

    def id_for_label(self, id_):
        return f"{id_}_0_{self.columns[0].key}" if id_ else id_

    def cell_text(self, column: TierColumn, value, posted: bool) -> str:
        if value is None or value == "":
            return ""
        if posted or as_decimal(value) is None:
            return str(value)
        return column.text(value, self.currency)

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        tiers = list(value) if isinstance(value, list) else []
        posted = isinstance(value, PostedRows)
        base_id = context["widget"]["attrs"].get("id") or f"id_{name}"
        rows = []
        for index, tier in enumerate([*tiers, *([{}] * self.blank_rows)]):
            tier = tier if isinstance(tier, dict) else {}
            rows.append(
                [
                    {
                        "name": f"{name}-{index}-{column.key}",
                        "id": f"{base_id}_{index}_{column.key}",
                        "value": self.cell_text(column, tier.get(column.key), posted),
                        "label": column.label,
                        "placeholder": column.placeholder,
                    }
                    for column in self.columns
                ]
            )
        context["widget"].update(columns=self.columns, rows=rows)
        return context

    def render(self, name, value, attrs=None, renderer=None):
        # The project's template engine (where the admin's templates live), not the
        # form renderer's, which knows only the apps' and Django's form templates.
        return render_to_string(self.template_name, self.get_context(name, value, attrs))


def tier_row_problems(number: int, row: dict, columns) -> list[str]:
    """What is wrong with the cells of tier `number`, each bound checked as the API does."""
    problems = []
    for column in columns:
        raw = row.get(column.key)
        if raw in (None, ""):
            if column.required:
                problems.append(f"Tier {number}: enter a {column.name}.")
            continue
        what = f"Tier {number} {column.name}"
        try:
            bounded(parse_decimal(raw, what), what, maximum=column.maximum, places=column.places)
        except ValidationError as error:
            problems.extend(error.messages)
    return problems


class TiersField(forms.Field):
    """Tier rows in, the tiers `plan_rules.clean_tiers` returns out (decimal strings, the last
    tier open). Cells are checked row by row first, so every row's problem shows at once."""

    widget = TierRowsWidget

    def __init__(self, *, columns=TIER_COLUMNS, **kwargs):
        super().__init__(**kwargs)
        self.columns = columns
        self.widget.columns = columns

    def to_python(self, value):
        if value in self.empty_values:
            return []
        if not isinstance(value, list) or not all(isinstance(row, dict) for row in value):
            raise ValidationError("Enter the tiers as rows.", code="invalid")
        return value

    def clean(self, value):
        rows = self.to_python(value)
        problems = [
            problem
            for number, row in enumerate(rows, start=1)
            for problem in tier_row_problems(number, row, self.columns)
        ]
        if problems:
            raise ValidationError(problems)
        return clean_tiers([{k: v for k, v in row.items() if v not in (None, "")} for row in rows])

    def comparable(self, tiers) -> list[tuple]:
        """Stored tiers and posted rows alike, as numbers where they are numbers."""
        rows = [row for row in tiers if isinstance(row, dict)] if isinstance(tiers, list) else []
        return [tuple(cell_value(row.get(c.key)) for c in self.columns) for row in rows]

    def has_changed(self, initial, data):
        return self.comparable(initial) != self.comparable(data)


def cell_value(value):
    number = as_decimal(value)
    return number if number is not None else (value or None)


def model_help(model, name: str) -> str:
    return model._meta.get_field(name).help_text


class PlanForm(forms.ModelForm):
    currency = forms.ChoiceField(
        choices=currency_choices, initial=DEFAULT_CURRENCY, help_text=model_help(Plan, "currency")
    )

    class Meta:
        model = Plan
        fields = [
            "code", "name", "owner", "customer", "currency", "base_fee", "minimum_commitment",
            "billing_period", "description", "is_active", "copy_statements_to_owner",
        ]  # fmt: skip
        widgets = {"base_fee": money_input(), "minimum_commitment": money_input()}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        currency = self.instance.currency or DEFAULT_CURRENCY
        if "currency" in self.fields and currency not in dict(currency_choices()):
            # A plan saved with a code no longer in use keeps it selectable.
            self.fields["currency"].choices = [(currency, currency), *currency_choices()]
        for name in ("base_fee", "minimum_commitment"):
            if name in self.fields:
                self.fields[name].widget.currency = currency


class MeterSelect(forms.Select):
    """Meter options that say which attribute breaks each meter down (data-group-by),
    so the page can offer the dimension field only where it applies."""

    group_by: dict = {}

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        attribute = self.group_by.get(str(getattr(value, "value", value)))
        if attribute:
            option["attrs"]["data-group-by"] = attribute
        return option


class PlanItemForm(forms.ModelForm):
    thresholds = ThresholdsField(required=False, help_text=model_help(PlanItem, "thresholds"))
    tiers = TiersField(required=False, help_text=model_help(PlanItem, "tiers"))

    class Meta:
        model = PlanItem
        fields = [
            "meter", "dimension", "charge_model", "package_size", "included_quantity", "limit",
            "overage_policy", "unit_price", "tiers", "thresholds",
        ]  # fmt: skip
        widgets = {
            "meter": MeterSelect(),
            "included_quantity": quantity_input(),
            "limit": quantity_input(),
            "unit_price": money_input(),
        }

    class Media:
        js = ("js/plan-items.js",)
        css = {"all": ("css/plan-items.css",)}

    def __init__(self, *args, currency: str = DEFAULT_CURRENCY, **kwargs):
        super().__init__(*args, **kwargs)
        # The admin wraps the select (add and change links): set the inner one.
        meter_widget = getattr(self.fields.get("meter"), "widget", None)
        meter_widget = getattr(meter_widget, "widget", meter_widget)
        if isinstance(meter_widget, MeterSelect):
            meter_widget.group_by = {
                str(pk): attribute
                for pk, attribute in Meter.objects.exclude(group_by="").values_list(
                    "pk", "group_by"
                )
            }
        for name in ("unit_price", "tiers"):
            if name in self.fields:
                self.fields[name].widget.currency = currency
        if self.instance.pk is None and "unit_price" in self.fields:
            # A new row starts without a price: the seller gives one, or tiers.
            self.fields["unit_price"].initial = None


class PlanItemFormSet(forms.BaseInlineFormSet):
    def get_form_kwargs(self, index):
        return {**super().get_form_kwargs(index), "currency": self.instance.currency}

    def clean(self):
        super().clean()
        forms_in_use = [
            f for f in self.forms if f.cleaned_data and not f.cleaned_data.get("DELETE")
        ]
        duplicates = duplicate_meter_errors(
            [
                (f.cleaned_data.get("meter"), f.cleaned_data.get("dimension") or None)
                for f in forms_in_use
            ]
        )
        for index, message in duplicates.items():
            forms_in_use[index].add_error("meter", message)


class SubscriptionForm(forms.ModelForm):
    class Meta:
        model = Subscription
        fields = ["tenant", "plan", "starts_on", "ends_on"]

    def add_error(self, field, error):
        # The subscription rules may name a field the change form shows read-only
        # (tenant, plan, start): there the message belongs to the whole form.
        if field is None and isinstance(error, ValidationError) and hasattr(error, "error_dict"):
            mapped: dict[str, list] = {}
            for name, errors in error.error_dict.items():
                mapped.setdefault(name if name in self.fields else NON_FIELD_ERRORS, []).extend(
                    errors
                )
            error = ValidationError(mapped)
        super().add_error(field, error)


class Rehearsal(Exception):
    """Rolls back a write made only to learn whether it would be refused."""


def subscribe_refusal(**subscription) -> ValidationError | None:
    """Why `plans.subscribe` would refuse this subscription, or None.

    The service runs for real inside a savepoint that is then rolled back, so the form
    reports the service's own answer (a running subscription ended the day before is
    fine, an overlap with a dated one is not) before anything is saved.
    """
    try:
        with transaction.atomic():
            subscribe(**subscription)
            raise Rehearsal
    except Rehearsal:
        return None
    except ValidationError as error:
        return error
    except IntegrityError:
        return ValidationError(
            "Another change to this tenant's subscriptions was saved at the same time; "
            "check them and try again."
        )


class NewSubscriptionForm(SubscriptionForm):
    """Adding a subscription is `plans.subscribe`, as in the API: an open subscription
    that started earlier ends the day before the new one starts."""

    def _post_clean(self):
        # Django's model validation would refuse the new subscription for overlapping
        # the running one that subscribe() is about to end; the service decides instead.
        opts = self._meta
        try:
            self.instance = construct_instance(self, self.instance, opts.fields, opts.exclude)
        except ValidationError as error:
            self._update_errors(error)
            return
        if self._errors:
            return
        refusal = subscribe_refusal(
            tenant=self.instance.tenant,
            plan=self.instance.plan,
            starts_on=self.instance.starts_on,
            ends_on=self.instance.ends_on,
        )
        if refusal is not None:
            self._update_errors(refusal)
