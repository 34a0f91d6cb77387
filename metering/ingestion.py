"""Ingestion: validate a batch of usage events, then store it whole or not at all.

The rules an event must satisfy live here once, for the API and the `ingest`
command alike. A batch with any invalid event is rejected with every error
(index, field, reason) and nothing is stored; events whose `event_id` is
already stored for the same tenant are acknowledged as duplicates and not
stored again. Who may send usage for a tenant, and who may correct it, is
decided here too.
"""

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

from django.conf import settings
from django.db.models import F, Lookup, Q
from django.utils import timezone

from accounts.models import ApiKey, Tenant
from metering.models import Meter, UsageEvent
from metering.stores import event_store
from metering.stores.events import EventRow, IngestResult
from utilities.text import text_problem

MAX_BATCH = 10_000
MAX_BODY_BYTES = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
MAX_EVENT_ID = 128
MAX_ATTRIBUTES = 16
MAX_ATTRIBUTE_KEY = 64
MAX_ATTRIBUTE_VALUE = 256
FUTURE_TOLERANCE = timedelta(minutes=5)
QUANTITY_PLACES = 6
QUANTITY_LIMIT = Decimal(10) ** (20 - QUANTITY_PLACES)
QUANTUM = Decimal(1).scaleb(-QUANTITY_PLACES)
EVENT_FIELDS = {"event_id", "tenant", "meter", "quantity", "timestamp", "source", "attributes"}
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})$")
LOOKUP_CHUNK = 2000
SOURCES = frozenset(UsageEvent.Source.values)
SOURCE_ERROR = f"Must be one of {', '.join(UsageEvent.Source.values)}."


class TenantRef(NamedTuple):
    """What validating an event needs of its tenant."""

    pk: int
    is_active: bool


@dataclass
class EventError:
    message: str
    field: str | None = None
    index: int | None = None

    def as_dict(self) -> dict:
        error = {"message": self.message}
        if self.index is not None:
            error["index"] = self.index
        if self.field:
            error["field"] = self.field
        return error


class BatchRejected(Exception):
    """The batch is invalid; nothing was stored."""

    def __init__(self, errors: list[EventError]):
        super().__init__(f"{len(errors)} invalid event(s)")
        self.errors = errors


def ingest_events(events, *, principal, now: datetime | None = None) -> IngestResult:
    """Validate and store a batch; raises BatchRejected with every error found."""
    rows = validate_batch(events, principal=principal, now=now)
    return store_events(rows)


def validate_batch(events, *, principal, now: datetime | None = None) -> list[EventRow]:
    """Every event checked against the rules; rows to insert, or BatchRejected."""
    if not isinstance(events, list):
        raise BatchRejected([EventError("Expected a list of event objects.", "events")])
    if not events:
        raise BatchRejected([EventError("The batch is empty: send at least one event.", "events")])
    if len(events) > MAX_BATCH:
        raise BatchRejected(
            [EventError(f"At most {MAX_BATCH:,} events per batch; got {len(events):,}.", "events")]
        )
    rows, errors = validate_events(events, principal=principal, now=now)
    if errors:
        raise BatchRejected(errors)
    return rows


def validate_events(
    events: list, *, principal, now: datetime | None = None
) -> tuple[list[EventRow], list[EventError]]:
    """Each event checked on its own: the valid ones, and errors naming the others."""
    context = BatchContext(events, principal=principal, now=now or timezone.now())
    rows, errors = [], []
    for index, raw in enumerate(events):
        event, event_errors = context.validate(raw)
        for error in event_errors:
            error.index = index
        errors.extend(event_errors)
        if event is not None:
            rows.append(event)
    return rows, errors


def count_stored(keys: list[tuple[int, str]]) -> int:
    """How many of these (tenant id, event id) pairs are already stored (for dry runs)."""
    return event_store().count_stored(keys)


class BatchContext:
    """What validating one batch needs, looked up once: tenants, meters, the clock."""

    def __init__(self, events: list, *, principal, now: datetime):
        self.principal = principal
        self.now = now
        self.received_at = now
        self.oldest = now - timedelta(days=settings.USAGE_BACKDATE_DAYS)
        self.newest = now + FUTURE_TOLERANCE
        self.meters = {m.code: m for m in Meter.objects.filter(is_active=True)}
        refs = {
            e.get("tenant")
            for e in events
            if isinstance(e, dict) and isinstance(e.get("tenant"), str)
        }
        self.tenants = resolve_tenants(
            {r for r in refs if isinstance(r, str) and r}, principal=principal
        )
        self.writable = writable_tenant_ids(principal)

    def may_correct(self) -> bool:
        """Negative corrections lower the bills of every subscribed tenant above the
        event, so only the platform operator or a key granted `correct` sends them."""
        return principal_may_correct(self.principal)

    def validate(self, raw) -> tuple[EventRow | None, list[EventError]]:
        if not isinstance(raw, dict):
            return None, [EventError("Each event must be a JSON object.")]
        errors = []
        if not raw.keys() <= EVENT_FIELDS:
            unknown = sorted(raw.keys() - EVENT_FIELDS)
            errors = [EventError("Unknown field.", name) for name in unknown]
        event_id = check_event_id(raw.get("event_id"), errors)
        tenant = self.check_tenant(raw.get("tenant"), errors)
        meter = self.check_meter(raw.get("meter"), errors)
        quantity = check_quantity(raw.get("quantity"), errors)
        occurred_at = self.check_timestamp(raw.get("timestamp"), errors)
        source = check_source(raw.get("source", UsageEvent.Source.API), errors)
        attributes = check_attributes(raw.get("attributes", {}), errors)
        if meter is not None and attributes is not None:
            check_meter_attributes(meter, attributes, errors)
        if quantity is not None and quantity < 0 and meter is not None and tenant is not None:
            self.check_correction(meter, attributes or {}, errors)
        if errors:
            return None, errors
        return (
            EventRow(
                event_id,
                tenant.pk,
                meter.pk,
                quantity,
                occurred_at,
                self.received_at,
                source,
                attributes.get(meter.group_by, "") if meter.group_by else "",
                attributes,
            ),
            [],
        )

    def check_tenant(self, value, errors) -> TenantRef | None:
        if value is None or value == "":
            errors.append(EventError("Required: the tenant's slug or external id.", "tenant"))
            return None
        if not isinstance(value, str):
            errors.append(EventError("Must be a string (slug or external id).", "tenant"))
            return None
        if problem := text_problem(value):
            errors.append(EventError(problem, "tenant"))
            return None
        tenant = self.tenants.get(value)
        if tenant is None:
            # The same answer for "does not exist" and "not yours": nothing leaks.
            errors.append(EventError(f"Unknown tenant {value!r}.", "tenant"))
        elif not tenant.is_active:
            errors.append(EventError(f"Tenant {value!r} is inactive.", "tenant"))
            return None
        elif self.writable is not None and tenant.pk not in self.writable:
            errors.append(
                EventError(
                    f"You may read {value!r} but not send its usage: that takes the manager "
                    "or admin role, or an API key with the ingest scope.",
                    "tenant",
                )
            )
            return None
        return tenant

    def check_meter(self, value, errors) -> Meter | None:
        if value is None or value == "":
            errors.append(EventError("Required: a meter code (see /api/v1/meters/).", "meter"))
            return None
        meter = self.meters.get(value) if isinstance(value, str) else None
        if meter is None:
            errors.append(EventError(f"Unknown meter {value!r}.", "meter"))
        return meter

    def check_timestamp(self, value, errors) -> datetime | None:
        if value is None:
            return self.now
        if not isinstance(value, str) or not RFC3339.match(value):
            errors.append(
                EventError(
                    "Use an RFC 3339 timestamp with a zone, e.g. 2026-11-25T08:30:00Z.",
                    "timestamp",
                )
            )
            return None
        try:
            occurred_at = datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
        except ValueError:
            errors.append(EventError("Not a valid date and time.", "timestamp"))
            return None
        if occurred_at > self.newest:
            errors.append(
                EventError("In the future: at most 5 minutes ahead of the server.", "timestamp")
            )
        elif occurred_at < self.oldest:
            errors.append(
                EventError(
                    f"Older than {settings.USAGE_BACKDATE_DAYS} days; too late to record.",
                    "timestamp",
                )
            )
        return occurred_at

    def check_correction(self, meter, attributes, errors) -> None:
        if meter.aggregation != Meter.Aggregation.SUM:
            errors.append(
                EventError(
                    f"Negative quantities are only allowed for summed meters; {meter.code} "
                    f"is aggregated by {meter.aggregation}.",
                    "quantity",
                )
            )
        elif not self.may_correct():
            errors.append(
                EventError(
                    "Negative corrections come only from the platform operator or an API key "
                    "with the correct scope.",
                    "quantity",
                )
            )
        elif not attributes.get("reason", "").strip():
            errors.append(
                EventError("A negative correction needs a 'reason' attribute.", "attributes.reason")
            )


def writable_tenant_ids(principal) -> set[int] | None:
    """The tenants whose usage a principal may send; None: every tenant it may see.

    API keys reach ingestion only with the ingest scope (the view's permission),
    so a key writes wherever it reads; users need the manager or admin role.
    """
    if getattr(principal, "is_superuser", False):
        return None
    if getattr(principal, "scope_tenant", None) is not None:
        return None
    return set(Tenant.objects.managed_by(principal).values_list("pk", flat=True))


def principal_may_correct(principal) -> bool:
    if getattr(principal, "is_superuser", False):
        return True
    api_key = getattr(principal, "api_key", None)
    return api_key is not None and api_key.has_scope(ApiKey.Scope.CORRECT)


class AnyOf(Lookup):
    """`column IN (…)` over a list of strings, for the long lists of a batch (its
    tenant references). PostgreSQL gets the list as one array parameter: with a
    placeholder per value, splitting and quoting the statement in the client took
    ten times as long as the server took to answer it."""

    lookup_name = "any_of"
    prepare_rhs = False

    def get_prep_lookup(self):
        return list(self.rhs)

    def as_sql(self, compiler, connection):
        lhs, params = self.process_lhs(compiler, connection)
        return f"{lhs} IN ({', '.join(['%s'] * len(self.rhs))})", (*params, *self.rhs)

    def as_postgresql(self, compiler, connection):
        lhs, params = self.process_lhs(compiler, connection)
        return f"{lhs} = ANY(%s)", (*params, self.rhs)


def resolve_tenants(refs: set[str], *, principal) -> dict[str, TenantRef]:
    """Map slugs and external ids to the tenants the principal may see.

    Slugs and external ids share one namespace (enforced on every tenant write),
    so a reference names one tenant; should stored data ever disagree, a slug
    wins over an external id and an ambiguous external id resolves to nothing.
    """
    visible = Tenant.objects.visible_to(principal)
    by_slug: dict[str, TenantRef] = {}
    by_external: dict[str, list[TenantRef]] = {}
    refs_list = sorted(refs)
    columns = ("pk", "slug", "external_id", "is_active")
    for start in range(0, len(refs_list), LOOKUP_CHUNK):
        chunk = refs_list[start : start + LOOKUP_CHUNK]
        found = visible.filter(Q(AnyOf(F("slug"), chunk)) | Q(AnyOf(F("external_id"), chunk)))
        found = found.order_by()
        for pk, slug, external_id, is_active in found.values_list(*columns):
            tenant = TenantRef(pk, is_active)
            if slug in refs:
                by_slug[slug] = tenant
            if external_id in refs:
                by_external.setdefault(external_id, []).append(tenant)
    found = {ref: tenants[0] for ref, tenants in by_external.items() if len(tenants) == 1}
    found.update(by_slug)
    return found


def check_event_id(value, errors) -> str | None:
    if not isinstance(value, str) or not value.strip():
        errors.append(EventError("Required: a non-empty string, unique per event.", "event_id"))
        return None
    if len(value) > MAX_EVENT_ID:
        errors.append(EventError(f"At most {MAX_EVENT_ID} characters.", "event_id"))
        return None
    if problem := text_problem(value):
        errors.append(EventError(problem, "event_id"))
        return None
    return value


def parse_quantity(value) -> Decimal:
    """A finite Decimal from a JSON number or a decimal string, or ValueError."""
    if isinstance(value, bool) or value is None:
        raise ValueError("Required: a number or a decimal string.")
    if isinstance(value, float):
        value = repr(value)
    if isinstance(value, int):
        value = str(value)
    if isinstance(value, Decimal):
        quantity = value
    elif isinstance(value, str):
        try:
            quantity = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError("Not a number.") from None
    else:
        raise ValueError("Required: a number or a decimal string.")
    if not quantity.is_finite():
        raise ValueError("Must be a finite number (no NaN or Infinity).")
    # copy_abs, not abs(): abs() rounds in the context and overflows on 1e999999999.
    if quantity.copy_abs() >= QUANTITY_LIMIT:
        raise ValueError(f"Too large: at most {20 - QUANTITY_PLACES} digits before the point.")
    rounded = quantity.quantize(QUANTUM)
    if rounded != quantity:
        raise ValueError(f"At most {QUANTITY_PLACES} decimal places.")
    return rounded


def check_quantity(value, errors) -> Decimal | None:
    try:
        return parse_quantity(value)
    except ValueError as error:
        errors.append(EventError(str(error), "quantity"))
        return None


def check_source(value, errors) -> str | None:
    if not isinstance(value, str) or value not in SOURCES:
        errors.append(EventError(SOURCE_ERROR, "source"))
        return None
    return value


def check_attributes(value, errors) -> dict | None:
    if not isinstance(value, dict):
        errors.append(EventError("Must be an object of string keys and values.", "attributes"))
        return None
    if len(value) > MAX_ATTRIBUTES:
        errors.append(EventError(f"At most {MAX_ATTRIBUTES} attributes.", "attributes"))
        return None
    ok = True
    for key, item in value.items():
        if not key or len(key) > MAX_ATTRIBUTE_KEY:
            errors.append(
                EventError(f"Keys are 1 to {MAX_ATTRIBUTE_KEY} characters.", "attributes")
            )
            ok = False
        elif problem := text_problem(key):
            errors.append(EventError(f"Key {key!r}: {problem}", "attributes"))
            ok = False
        elif not isinstance(item, str):
            errors.append(EventError("Values must be strings.", f"attributes.{key}"))
            ok = False
        elif len(item) > MAX_ATTRIBUTE_VALUE:
            errors.append(
                EventError(f"At most {MAX_ATTRIBUTE_VALUE} characters.", f"attributes.{key}")
            )
            ok = False
        elif problem := text_problem(item):
            errors.append(EventError(problem, f"attributes.{key}"))
            ok = False
    return value if ok else None


def check_meter_attributes(meter: Meter, attributes: dict, errors) -> None:
    if meter.unique_key and not attributes.get(meter.unique_key):
        errors.append(
            EventError(
                f"Meter {meter.code} counts distinct {meter.unique_key!r} values; "
                "give it as an attribute.",
                f"attributes.{meter.unique_key}",
            )
        )


def store_events(rows: list[EventRow | UsageEvent]) -> IngestResult:
    """Store the batch whole or not at all, in the configured event store; an event
    id already stored for the same tenant counts as a duplicate."""
    return event_store().store(rows)
