"""Demo usage: about 45 days of believable telemetry for the demo tree.

Deterministic for a given end day (fixed seed): business-hours curves, a category
mix per organization, storage, licenses, portals and SIP trunks as daily gauges.
It goes through the ingestion service's insert path (`store_events`).
"""

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from accounts.models import Tenant
from metering.ingestion import store_events
from metering.models import Meter, UsageEvent

SEED = 4242
DAYS = 45
STORE_BATCH = 20_000
# Weights of each UTC hour: quiet nights, a morning and an afternoon peak.
HOUR_WEIGHTS = [1, 1, 1, 1, 1, 2, 4, 8, 14, 18, 19, 17, 14, 16, 18, 17, 14, 10, 7, 5, 4, 3, 2, 1]
HOURS = list(range(24))
ACTIVITIES = [
    ("transcription", 30), ("translation", 10), ("summarization", 14), ("ocr", 8),
    ("object_detection", 5), ("pii_detection", 6), ("redaction", 5), ("embedding", 9),
    ("chapters", 4), ("transcoding", 12), ("malware_scanning", 3), ("workflow", 6),
]  # fmt: skip
LICENSE_TYPES = [("administrator", 2), ("power_plus", 6), ("viewer", 25)]
TIERS = [("hot", 1.0), ("cool", 2.5), ("archive", 6.0)]
# Organization profiles: relative weight of each kind of activity.
PROFILES = {
    "contact_center": {"calls": 1.6, "chats": 1.3, "emails": 1.2, "media": 0.3},
    "media_archive": {"calls": 0.3, "chats": 0.4, "emails": 0.5, "media": 2.0},
    "balanced": {"calls": 1.0, "chats": 1.0, "emails": 1.0, "media": 1.0},
}


class DemoUsage:
    def __init__(
        self, end_day: date, days: int = DAYS, seed: int = SEED, now: datetime | None = None
    ):
        self.rng = random.Random(seed)
        self.first_day = end_day - timedelta(days=days - 1)
        self.days = days
        self.now = now or datetime.now(UTC)
        self.meters = {m.code: m for m in Meter.objects.all()}

    def events(self, organizations: list[Tenant], agents_by_org: dict) -> Iterator[UsageEvent]:
        """Every demo event up to now; later hours of today are drawn but not kept."""
        return (
            e for e in self.all_events(organizations, agents_by_org) if e.occurred_at <= self.now
        )

    def all_events(self, organizations, agents_by_org) -> Iterator[UsageEvent]:
        for org in organizations:
            profile = PROFILES[self.rng.choice(list(PROFILES))]
            yield from self.organization_events(org, profile)
            for agent in agents_by_org.get(org.pk, []):
                scale = self.rng.uniform(0.4, 1.6)
                yield from self.agent_events(agent, profile, scale)

    def days_iter(self):
        for offset in range(self.days):
            yield offset, self.first_day + timedelta(days=offset)

    def at(self, day: date, hour: int | None = None) -> datetime:
        hour = hour if hour is not None else self.rng.choices(HOURS, HOUR_WEIGHTS)[0]
        return datetime.combine(day, time(hour), UTC) + timedelta(
            minutes=self.rng.randrange(60), seconds=self.rng.randrange(60)
        )

    def event(self, event_id, tenant, code, quantity, at, source="api", **attributes):
        meter = self.meters[code]
        return UsageEvent(
            event_id=event_id,
            tenant=tenant,
            meter=meter,
            quantity=Decimal(quantity),
            occurred_at=at,
            received_at=at,
            source=source,
            dimension=attributes.get(meter.group_by, "") if meter.group_by else "",
            attributes=attributes,
        )

    def agent_events(self, agent, profile, scale) -> Iterator[UsageEvent]:
        rng = self.rng
        prefix = f"demo-{agent.slug}"
        for offset, day in self.days_iter():
            weekday = day.weekday() < 5
            load = scale * (1.0 if weekday else 0.35)
            stamp = day.isoformat()
            for n in range(poisson(rng, 10 * load * profile["calls"])):
                minutes = f"{rng.uniform(0.5, 14):.2f}"
                direction = rng.choices(["inbound", "outbound"], [3, 1])[0]
                yield self.event(f"{prefix}-{stamp}-call-{n}", agent, "call_minutes", minutes,
                                 self.at(day), direction=direction)  # fmt: skip
            for n in range(poisson(rng, 7 * load * profile["chats"])):
                channel = rng.choice(["web", "sms", "whatsapp"])
                yield self.event(f"{prefix}-{stamp}-chat-{n}", agent, "chat_sessions", 1,
                                 self.at(day), channel=channel)  # fmt: skip
            for n in range(poisson(rng, 5 * load * profile["emails"])):
                direction = rng.choices(["outbound", "inbound"], [2, 1])[0]
                yield self.event(f"{prefix}-{stamp}-email-{n}", agent, "emails", 1,
                                 self.at(day), direction=direction)  # fmt: skip
            for n in range(poisson(rng, 6 * load * profile["media"])):
                activity = rng.choices(*zip(*ACTIVITIES, strict=True))[0]
                at = self.at(day)
                pu = f"{rng.uniform(0.2, 25):.3f}"
                yield self.event(f"{prefix}-{stamp}-pu-{n}", agent, "processing_units", pu, at,
                                 source="service", activity=activity)  # fmt: skip
                ms = rng.randrange(800, 240_000)
                yield self.event(f"{prefix}-{stamp}-cpu-{n}", agent, "computation_ms", ms, at,
                                 source="service", activity=activity)  # fmt: skip
            for n in range(poisson(rng, 3 * load * profile["media"])):
                direction = rng.choices(["egress", "ingress"], [3, 1])[0]
                at = self.at(day)
                size = rng.randrange(200_000, 900_000_000)
                yield self.event(f"{prefix}-{stamp}-bu-{n}", agent, "bandwidth_units",
                                 f"{size / 1e9:.6f}", at, source="user",
                                 direction=direction)  # fmt: skip
                yield self.event(f"{prefix}-{stamp}-{direction}-{n}", agent,
                                 f"{direction}_bytes", size, at, source="user")  # fmt: skip
            growth = 1 + offset * 0.01
            for tier, factor in TIERS:
                su = f"{scale * factor * growth * profile['media']:.4f}"
                yield self.event(f"{prefix}-{stamp}-su-{tier}", agent, "storage_units", su,
                                 self.at(day, 23), source="service", tier=tier)  # fmt: skip

    def organization_events(self, org, profile) -> Iterator[UsageEvent]:
        rng = self.rng
        prefix = f"demo-{org.slug}"
        seats = {t: max(1, int(n * rng.uniform(0.5, 1.5))) for t, n in LICENSE_TYPES}
        portals = rng.randint(1, 4)
        trunks = rng.randint(1, 6) if profile["calls"] >= 1 else rng.randint(0, 2)
        users = [f"u{n:03d}" for n in range(sum(seats.values()))]
        for offset, day in self.days_iter():
            stamp = day.isoformat()
            end_of_day = self.at(day, 23)
            if offset % 9 == 4:
                kind = rng.choice(list(seats))
                seats[kind] = max(1, seats[kind] + rng.choice([-1, 1, 2]))
            for kind, count in seats.items():
                yield self.event(f"{prefix}-{stamp}-cal-{kind}", org, "licenses", count,
                                 end_of_day, source="service", license_type=kind)  # fmt: skip
            yield self.event(f"{prefix}-{stamp}-portals", org, "portals", portals, end_of_day,
                             source="service")  # fmt: skip
            yield self.event(f"{prefix}-{stamp}-sip", org, "sip_integrations", trunks,
                             end_of_day, source="service")  # fmt: skip
            active = rng.sample(users, k=max(1, int(len(users) * rng.uniform(0.2, 0.7))))
            for user_id in active:
                yield self.event(f"{prefix}-{stamp}-login-{user_id}", org, "active_users", 1,
                                 self.at(day), source="user", user_id=user_id)  # fmt: skip


def poisson(rng: random.Random, mean: float) -> int:
    """A small Poisson draw (Knuth); means here stay well below 50."""
    if mean <= 0:
        return 0
    limit, k, p = pow(2.718281828459045, -mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def load_demo_usage(end_day: date, days: int = DAYS, progress=None) -> int:
    """Load demo usage for every demo organization and agent; returns events stored.

    `progress` (a tqdm bar) counts organizations, whose number is known up front
    (the events' is not), so it can show the time left; it shows the events stored."""
    organizations = list(Tenant.objects.filter(kind=Tenant.Kind.ORGANIZATION).order_by("slug"))
    agents_by_org: dict[int, list[Tenant]] = {}
    for agent in Tenant.objects.filter(kind=Tenant.Kind.AGENT).order_by("slug"):
        agents_by_org.setdefault(agent.parent_id, []).append(agent)
    if progress is not None:
        progress.reset(total=len(organizations))
    usage, stored, batch = DemoUsage(end_day, days=days), 0, []
    # One organization at a time draws the same events as all at once (one random
    # stream, in the same order).
    for org in organizations:
        for event in usage.events([org], agents_by_org):
            batch.append(event)
            if len(batch) >= STORE_BATCH:
                stored += store_events(batch).accepted
                batch = []
        if progress is not None:
            progress.update(1)
            progress.set_postfix_str(f"{stored:,} events stored")
    if batch:
        stored += store_events(batch).accepted
    if progress is not None:
        progress.set_postfix_str(f"{stored:,} events stored")
    return stored
