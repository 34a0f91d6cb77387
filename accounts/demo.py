"""The demo tenant tree and users: deterministic, so loading it twice changes nothing."""

import random
import struct
import zlib
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils.text import slugify

from accounts.brands import put_logo
from accounts.models import Brand, Membership, Tenant

SEED = 20261125

PARTNERS = [
    ("Northwind Channel Partners", "USD", "America/New_York"),
    ("Bluepeak Alliance", "EUR", "Europe/Berlin"),
]
# (name, partner index or None for a reseller directly under the platform)
RESELLERS = [
    ("Cloudline Voice", 0),
    ("Harborview Digital", 0),
    ("Meridian AI Services", 0),
    ("Alpenglow Solutions", 1),
    ("Ostsee Telecom", 1),
    ("Independent Agents Co", None),
]
# Each partner's and reseller's brand: (tenant name, brand name, colour, domain).
# Cloudline's domain is under .localhost, which browsers send to this machine.
BRANDS = [
    ("Northwind Channel Partners", "Northwind Usage", "#0b5394", None),
    ("Bluepeak Alliance", "Bluepeak Cloud", "#1c4587", None),
    ("Cloudline Voice", "Cloudline Portal", "#0f766e", "cloudline.localhost"),
    ("Harborview Digital", "Harborview Metering", "#9a3412", None),
    ("Meridian AI Services", "Meridian AI", "#6d28d9", None),
    ("Alpenglow Solutions", "Alpenglow", "#be185d", None),
    ("Ostsee Telecom", "Ostsee Telecom", "#0369a1", None),
    ("Independent Agents Co", "Independent Agents", "#f5b301", None),
]
ORGS_PER_RESELLER = 10
AGENTS_PER_ORG = 10

ORG_FIRST = [
    "Acme",
    "Birchwood",
    "Cedar",
    "Crescent",
    "Driftwood",
    "Evergreen",
    "Falcon",
    "Granite",
    "Hillside",
    "Ironbridge",
    "Juniper",
    "Keystone",
    "Lakeshore",
    "Maple",
    "Northgate",
    "Oakridge",
    "Pinecrest",
    "Quarry",
    "Redwood",
    "Riverside",
    "Sagebrush",
    "Silverline",
    "Summit",
    "Tidewater",
    "Union",
    "Valley",
    "Westfield",
    "Willow",
    "Yellowstone",
    "Zenith",
]
ORG_TRADE = [
    "Dental",
    "Legal",
    "Logistics",
    "Realty",
    "Insurance",
    "Health",
    "Motors",
    "Travel",
    "Accounting",
    "Energy",
    "Foods",
    "Media",
    "Clinics",
    "Property",
    "Retail",
    "Credit Union",
]
ORG_SUFFIX = ["Group", "Partners", "Inc", "LLC", "Co", "Associates", "Holdings", "Services"]
AGENT_PERSONA = [
    "Ava",
    "Leo",
    "Maya",
    "Nova",
    "Iris",
    "Felix",
    "Luna",
    "Theo",
    "Zara",
    "Milo",
    "Ruby",
    "Otto",
    "Cleo",
    "Ezra",
    "Nora",
    "Juno",
    "Hugo",
    "Lila",
    "Remy",
    "Sage",
]
AGENT_ROLE = [
    "Front Desk",
    "Billing Support",
    "Appointment Booking",
    "Sales Qualifier",
    "Claims Intake",
    "After-hours Line",
    "Order Status",
    "Technical Support",
    "Collections",
    "Survey Caller",
    "Onboarding",
    "Renewals",
    "Dispatch",
    "Returns Desk",
    "Lead Follow-up",
]
ORG_TIMEZONES = [
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Madrid",
    "Asia/Singapore",
]


@dataclass(frozen=True)
class TenantSpec:
    slug: str
    name: str
    kind: str
    parent_slug: str | None
    external_id: str | None
    currency: str = "USD"
    timezone: str = "UTC"


@dataclass(frozen=True)
class UserSpec:
    username: str
    password: str
    tenant_slug: str | None
    role: str
    is_staff: bool
    is_superuser: bool
    label: str


def demo_tree() -> list[TenantSpec]:
    """Every demo tenant, parents before children, the same on every call."""
    rng = random.Random(SEED)
    specs: list[TenantSpec] = []
    for name, currency, tz in PARTNERS:
        specs.append(TenantSpec(slugify(name), name, Tenant.Kind.PARTNER, None, None, currency, tz))
    org_names = [f"{a} {b}" for a in ORG_FIRST for b in ORG_TRADE]
    rng.shuffle(org_names)
    org_index = 0
    for r_index, (r_name, partner_index) in enumerate(RESELLERS):
        parent = specs[partner_index] if partner_index is not None else None
        currency = parent.currency if parent else "USD"
        tz = parent.timezone if parent else "America/Chicago"
        reseller = TenantSpec(
            slugify(r_name),
            r_name,
            Tenant.Kind.RESELLER,
            parent.slug if parent else None,
            f"RS-{1001 + r_index}",
            currency,
            tz,
        )
        specs.append(reseller)
        for _ in range(ORGS_PER_RESELLER):
            base = org_names[org_index]
            org_index += 1
            org_name = f"{base} {rng.choice(ORG_SUFFIX)}"
            org = TenantSpec(
                slugify(base),
                org_name,
                Tenant.Kind.ORGANIZATION,
                reseller.slug,
                f"ORG-{10000 + org_index}",
                currency,
                rng.choice(ORG_TIMEZONES),
            )
            specs.append(org)
            personas = rng.sample(AGENT_PERSONA, AGENTS_PER_ORG)
            roles = rng.sample(AGENT_ROLE, AGENTS_PER_ORG)
            for a_index, (persona, role) in enumerate(zip(personas, roles, strict=True)):
                specs.append(
                    TenantSpec(
                        f"{org.slug}-{slugify(persona)}",
                        f"{persona} · {role}",
                        Tenant.Kind.AGENT,
                        org.slug,
                        f"AG-{10000 + org_index}-{a_index + 1:02d}",
                        currency,
                        org.timezone,
                    )
                )
    return specs


def demo_users(tree: list[TenantSpec]) -> list[UserSpec]:
    partner = tree[0]
    reseller = next(t for t in tree if t.parent_slug == partner.slug)
    other_reseller = next(t for t in tree if t.kind == Tenant.Kind.RESELLER and not t.parent_slug)
    organization = next(t for t in tree if t.parent_slug == reseller.slug)
    return [
        UserSpec("admin", "admin-demo-2026", None, "", True, True, "platform operator"),
        UserSpec(
            "partner", "partner-demo-2026", partner.slug, "manager", True, False, "partner staff"
        ),
        UserSpec(
            "reseller",
            "reseller-demo-2026",
            reseller.slug,
            "manager",
            True,
            False,
            "reseller staff",
        ),
        UserSpec(
            "reseller2",
            "reseller2-demo-2026",
            other_reseller.slug,
            "manager",
            True,
            False,
            "staff of another reseller",
        ),
        UserSpec(
            "org", "org-demo-2026", organization.slug, "viewer", False, False, "customer org staff"
        ),
    ]


def load_demo_tree(specs: list[TenantSpec], progress=None) -> int:
    """Create the tenants that are missing; returns how many were created."""
    existing = dict(Tenant.objects.values_list("slug", "pk"))
    created = 0
    with transaction.atomic():
        for spec in specs:
            if spec.slug not in existing:
                tenant = Tenant(
                    slug=spec.slug,
                    name=spec.name,
                    kind=spec.kind,
                    parent_id=existing[spec.parent_slug] if spec.parent_slug else None,
                    external_id=spec.external_id,
                    currency=spec.currency,
                    timezone=spec.timezone,
                )
                tenant.save()
                existing[spec.slug] = tenant.pk
                created += 1
            if progress is not None:
                progress.update(1)
    return created


def load_demo_users(specs: list[UserSpec]) -> None:
    user_model = get_user_model()
    for spec in specs:
        user, created = user_model.objects.get_or_create(
            username=spec.username,
            defaults={"is_staff": spec.is_staff, "is_superuser": spec.is_superuser},
        )
        if created:
            user.set_password(spec.password)
            user.save()
        if spec.tenant_slug:
            Membership.objects.get_or_create(
                user=user,
                tenant=Tenant.objects.get(slug=spec.tenant_slug),
                defaults={"role": spec.role},
            )


def bars_logo(color: str, size: int = 48) -> bytes:
    """A PNG of three rising bars in the brand's colour on a white tile: a stand-in
    logo per brand, visible on the brand's own top bar."""
    rgb = bytes(int(color[i : i + 2], 16) for i in (1, 3, 5))
    bars = [(8, 26), (20, 16), (32, 6)]  # (left x, top y), each 9 px wide
    rows = []
    for y in range(size):
        row = bytearray(b"\x00")  # filter type: none
        for x in range(size):
            inside = any(left <= x < left + 9 and top <= y < size - 6 for left, top in bars)
            row += rgb + b"\xff" if inside else b"\xff\xff\xff\xff"
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )


def load_demo_brands() -> int:
    """Give each demo partner and reseller its brand, unless it has one (edits stay)."""
    tenants = dict(Tenant.objects.filter(name__in=[b[0] for b in BRANDS]).values_list("name", "pk"))
    created = 0
    for tenant_name, name, color, domain in BRANDS:
        tenant_id = tenants.get(tenant_name)
        if tenant_id is None or Brand.objects.filter(tenant_id=tenant_id).exists():
            continue
        slug = slugify(tenant_name)
        brand = Brand(
            tenant_id=tenant_id,
            name=name,
            primary_color=color,
            support_email=f"support@{slug}.example",
            domain=domain,
        )
        put_logo(brand, bars_logo(color))
        brand.full_clean()
        brand.save()
        created += 1
    return created
