"""The tenant tree, who belongs where, and the one scoping rule (`visible_to`)."""

import zoneinfo
from functools import reduce
from operator import or_

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from mptt.managers import TreeManager
from mptt.models import MPTTModel, TreeForeignKey
from mptt.querysets import TreeQuerySet
from rest_framework_api_key.models import AbstractAPIKey, BaseAPIKeyManager

from accounts.signals import tenant_moved
from utilities.colors import color_problem
from utilities.currencies import validate_currency_code
from utilities.hostnames import domain_problem, normalized_domain
from utilities.text import text_problem


class TenantQuerySet(TreeQuerySet):
    def visible_to(self, principal):
        """Tenants a user (or an API key) may see: the subtrees of its memberships.

        Superusers see every tenant; anonymous users and principals without a
        membership see none. This is the only place that decides visibility.
        """
        return restrict_to(self, visibility_q(principal))

    def managed_by(self, user):
        """Tenants a user may edit: subtrees where the user is manager or admin."""
        return restrict_to(self, visibility_q(user, roles=Membership.MANAGING_ROLES))


class ScopedQuerySet(models.QuerySet):
    """For models that belong to a tenant: the same rule, through `tenant`."""

    def visible_to(self, principal):
        return restrict_to(self, visibility_q(principal, prefix="tenant__"))


def restrict_to(queryset, condition: Q | bool):
    if condition is True:
        return queryset.all()
    if condition is False:
        return queryset.none()
    return queryset.filter(condition)


def visibility_q(principal, prefix: str = "", roles=None) -> Q | bool:
    """True (everything), False (nothing) or a Q over the principal's subtrees."""
    if principal is None or not getattr(principal, "is_authenticated", False):
        return False
    if getattr(principal, "is_superuser", False):
        return True
    roots = list(membership_roots(principal, roles=roles))
    if not roots:
        return False
    return subtrees_q(roots, prefix)


class TenantManager(TreeManager.from_queryset(TenantQuerySet)):
    def move_node(self, node, target, position="last-child"):
        """Move through the tree API (the admin's drag and drop), announcing the move."""
        old_ancestors = ancestor_ids(node.pk)
        super().move_node(node, target, position)
        announce_move(node, old_ancestors)


def ancestor_ids(tenant_id: int) -> list[int]:
    """The stored ancestors of a tenant, read from the database (top first)."""
    stored = Tenant.objects.get(pk=tenant_id)
    return list(stored.get_ancestors().values_list("pk", flat=True))


def announce_move(tenant: "Tenant", old_ancestors: list[int]) -> None:
    new_ancestors = ancestor_ids(tenant.pk)
    if new_ancestors != old_ancestors:
        tenant_moved.send(
            sender=Tenant,
            tenant=tenant,
            old_ancestor_ids=old_ancestors,
            new_ancestor_ids=new_ancestors,
        )


def subtrees_q(roots, prefix: str = "") -> Q:
    """A Q matching every tenant inside any of `roots`' subtrees (roots included).

    `prefix` lets other models filter through their tenant foreign key, e.g.
    `subtrees_q(roots, "tenant__")`.
    """
    return reduce(
        or_,
        (
            Q(
                **{
                    f"{prefix}tree_id": root.tree_id,
                    f"{prefix}lft__gte": root.lft,
                    f"{prefix}rght__lte": root.rght,
                }
            )
            for root in roots
        ),
    )


def membership_roots(principal, roles=None):
    """The tenants at the top of a principal's memberships (or an API key's tenant)."""
    key_tenant = getattr(principal, "scope_tenant", None)
    if key_tenant is not None:
        # API keys read and write within their tenant; they never manage it.
        return [key_tenant] if roles is None else []
    memberships = Membership.objects.filter(user=principal).select_related("tenant")
    if roles is not None:
        memberships = memberships.filter(role__in=roles)
    return [m.tenant for m in memberships]


slug_validator = RegexValidator(
    r"^[a-z0-9]+(?:-[a-z0-9]+)*$",
    "Use lowercase letters, digits and single hyphens (e.g. acme-east).",
)


# The same answer whoever holds the value: a uniqueness error must not confirm
# that another tenant's slug or external id exists.
NOT_AVAILABLE = "This {what} is not available; choose another."


def validate_single_line(value: str) -> None:
    problem = text_problem(value, single_line=True)
    if problem:
        raise ValidationError(problem)


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not an IANA time zone (e.g. Europe/Berlin).")


class Tenant(MPTTModel):
    class Kind(models.TextChoices):
        PARTNER = "partner", "Partner"
        RESELLER = "reseller", "Reseller"
        ORGANIZATION = "organization", "Organization"
        AGENT = "agent", "Agent"

    # kind -> kinds its parent may have (None: no parent, at the top of the tree).
    ALLOWED_PARENT_KINDS = {
        Kind.PARTNER: {None},
        Kind.RESELLER: {None, Kind.PARTNER},
        Kind.ORGANIZATION: {Kind.RESELLER},
        Kind.AGENT: {Kind.ORGANIZATION},
    }

    name = models.CharField(max_length=200, validators=[validate_single_line])
    slug = models.SlugField(
        max_length=80,
        unique=True,
        validators=[slug_validator],
        error_messages={"unique": NOT_AVAILABLE.format(what="slug")},
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    parent = TreeForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    external_id = models.CharField(
        max_length=128,
        null=True,
        blank=True,
        unique=True,
        validators=[validate_single_line],
        error_messages={"unique": NOT_AVAILABLE.format(what="external id")},
        help_text="The integration's own key for this tenant; unique when set, and never "
        "another tenant's slug (events name a tenant by either).",
    )
    timezone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validate_timezone],
        help_text="An IANA time zone (e.g. Europe/Berlin): the portal shows times in it to "
        "this tenant's staff. Usage days stay UTC days.",
    )
    currency = models.CharField(
        max_length=3,
        default="USD",
        validators=[validate_currency_code],
        help_text="The tenant's ISO 4217 currency (e.g. USD, EUR, JPY).",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantManager()

    class Meta:
        # Declared so makemigrations keeps django-mptt's (tree_id, lft) index (mptt#682).
        indexes = ()

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        # An empty external id means "none", so uniqueness applies only when set.
        self.external_id = self.external_id or None
        # Every write path (API, admin, demo, commands) meets the one namespace.
        clash = self.namespace_errors()
        if clash:
            raise ValidationError(clash)
        moving = self.pk is not None and (
            Tenant.objects.filter(pk=self.pk).values_list("parent_id", flat=True).first()
            != self.parent_id
        )
        old_ancestors = ancestor_ids(self.pk) if moving else None
        super().save(*args, **kwargs)
        if moving:
            announce_move(self, old_ancestors)

    def clean(self):
        super().clean()
        self.external_id = self.external_id or None
        errors = {}
        parent_error = self.parent_error()
        if parent_error:
            errors["parent"] = parent_error
        kind_error = self.children_kind_error()
        if kind_error:
            errors["kind"] = kind_error
        errors.update(self.namespace_errors())
        if errors:
            raise ValidationError(errors)

    def namespace_errors(self) -> dict[str, str]:
        """Slugs and external ids form one namespace, so a reference in an event names
        exactly one tenant. A tenant's own slug may double as its external id."""
        others = Tenant.objects.exclude(pk=self.pk) if self.pk else Tenant.objects.all()
        errors = {}
        if self.slug and others.filter(external_id=self.slug).exists():
            errors["slug"] = NOT_AVAILABLE.format(what="slug")
        if self.external_id and others.filter(slug=self.external_id).exists():
            errors["external_id"] = NOT_AVAILABLE.format(what="external id")
        return errors

    def parent_error(self) -> str | None:
        """Why the current parent is not allowed for this kind, or None."""
        allowed = self.ALLOWED_PARENT_KINDS.get(self.kind)
        if allowed is None:
            return None  # the kind field reports an invalid choice itself
        parent = self.parent
        parent_kind = parent.kind if parent is not None else None
        if parent_kind not in allowed:
            return self.describe_allowed_parents()
        if parent is not None and self.contains(parent):
            return "A tenant cannot be moved under itself or one of its descendants."
        return None

    def contains(self, other: "Tenant") -> bool:
        """Whether `other` is this saved tenant or inside its subtree (stored tree fields)."""
        if not (self.pk and other.pk):
            return False
        return other.pk == self.pk or self.holds_position(other.tree_id, other.lft)

    def holds_position(self, tree_id: int, lft: int) -> bool:
        """Whether the tenant stored at (tree_id, lft) is this one or inside its subtree:
        the subtree rule of subtrees_q, for positions already read."""
        return tree_id == self.tree_id and self.lft <= lft <= self.rght

    def subtree_sql(self, alias: str) -> tuple[str, list]:
        """The subtree rule of subtrees_q as a raw SQL condition on tenant `alias`."""
        condition = f"{alias}.tree_id = %s AND {alias}.lft >= %s AND {alias}.lft <= %s"
        return condition, [self.tree_id, self.lft, self.rght]

    def describe_allowed_parents(self) -> str:
        kinds = self.ALLOWED_PARENT_KINDS[self.kind]
        label = self.Kind(self.kind).label.lower()
        named = sorted(k for k in kinds if k is not None)
        if not named:
            return f"A {label} sits at the top of the tree and has no parent."
        choices = " or ".join(self.Kind(k).label.lower() for k in named)
        if None in kinds:
            return f"A {label}'s parent must be a {choices}, or none."
        return f"A {label}'s parent must be a {choices}."

    def children_kind_error(self) -> str | None:
        """Changing the kind must keep every existing child's parent rule valid."""
        if not self.pk or self.kind not in self.ALLOWED_PARENT_KINDS:
            return None
        child_kinds = set(
            Tenant.objects.filter(parent_id=self.pk).values_list("kind", flat=True).distinct()
        )
        bad = sorted(k for k in child_kinds if self.kind not in self.ALLOWED_PARENT_KINDS[k])
        if bad:
            return f"A {self.kind} cannot have {', '.join(bad)} children, and this tenant has some."
        return None


def validate_color(value: str) -> None:
    problem = color_problem(value)
    if problem:
        raise ValidationError(problem)


def reserved_hosts() -> list[str]:
    """The operator's own host patterns, never a tenant's domain."""
    return list(getattr(settings.ALLOWED_HOSTS, "static", settings.ALLOWED_HOSTS))


class Brand(models.Model):
    """What a partner or reseller shows everyone below it instead of the platform's
    name; `accounts.brands.effective_brand` says whose brand a tenant shows."""

    BRANDED_KINDS = (Tenant.Kind.PARTNER, Tenant.Kind.RESELLER)
    LOGO_MAX_BYTES = 512 * 1024

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="brand")
    name = models.CharField(
        max_length=100,
        blank=True,
        validators=[validate_single_line],
        help_text="Shown instead of the platform's name; empty: the tenant's own name.",
    )
    primary_color = models.CharField(
        max_length=7,
        blank=True,
        validators=[validate_color],
        help_text="#rrggbb, the top bar and buttons; the text on it is chosen for contrast.",
    )
    logo_url = models.URLField(
        max_length=500,
        blank=True,
        help_text="An http(s) address of a PNG, JPEG, GIF or WebP logo; the portal fetches "
        "it once and serves its own copy.",
    )
    logo = models.BinaryField(null=True, blank=True, editable=False)
    logo_type = models.CharField(max_length=20, blank=True, editable=False)
    logo_hash = models.CharField(max_length=64, blank=True, editable=False, db_index=True)
    logo_problem = models.CharField(
        max_length=300,
        blank=True,
        editable=False,
        help_text="Why the logo at the logo URL could not be used, if it could not.",
    )
    support_email = models.EmailField(blank=True, help_text="Replies to the portal's mail go here.")
    domain = models.CharField(
        max_length=253,
        null=True,
        blank=True,
        unique=True,
        error_messages={"unique": NOT_AVAILABLE.format(what="domain")},
        help_text="A host name of yours (e.g. usage.example.com) pointing at the portal: "
        "its sign-in page shows this brand.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(domain__isnull=True) | ~Q(domain=""),
                name="brand_domain_null_not_empty",
                violation_error_message="A brand without a domain stores none, not an empty one.",
            )
        ]

    def __str__(self) -> str:
        return self.name or self.tenant.name

    def save(self, *args, **kwargs):
        self.domain = normalized_domain(self.domain or "") or None
        self.primary_color = self.primary_color.lower()
        super().save(*args, **kwargs)

    def clean(self):
        super().clean()
        errors = {}
        if self.tenant_id and self.tenant.kind not in self.BRANDED_KINDS:
            errors["tenant"] = "Only partners and resellers carry a brand."
        self.domain = normalized_domain(self.domain or "") or None
        if self.domain:
            problem = domain_problem(self.domain, reserved_hosts())
            if problem:
                errors["domain"] = problem
        if self.logo_url and not self.logo_url.startswith(("http://", "https://")):
            errors["logo_url"] = "Use an http:// or https:// address."
        if errors:
            raise ValidationError(errors)


class Membership(models.Model):
    class Role(models.TextChoices):
        VIEWER = "viewer", "Viewer"
        MANAGER = "manager", "Manager"
        ADMIN = "admin", "Admin"

    MANAGING_ROLES = (Role.MANAGER, Role.ADMIN)

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "tenant"], name="membership_unique_user_tenant")
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.tenant} ({self.role})"


class ApiKeyManager(BaseAPIKeyManager):
    def get_usable_keys(self):
        return super().get_usable_keys().select_related("tenant")


class ApiKey(AbstractAPIKey):
    """A hashed key bound to one tenant's subtree; the key itself is shown once."""

    objects = ApiKeyManager()

    class Scope(models.TextChoices):
        INGEST = "ingest", "Send usage events"
        READ = "read", "Read usage, records and tenants"
        # Granted by superusers only: negative corrections lower upstream bills.
        CORRECT = "correct", "Send negative corrections (platform operator grants)"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    scopes = models.JSONField(
        default=list,
        help_text='Any of "ingest", "read" and "correct" (granted by platform operators '
        'only), e.g. ["ingest", "read"].',
    )

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"

    def clean(self):
        super().clean()
        valid = set(self.Scope.values)
        if not isinstance(self.scopes, list) or not self.scopes or not set(self.scopes) <= valid:
            raise ValidationError(
                {"scopes": f"Give a non-empty list of scopes among {sorted(valid)}."}
            )

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


class PlatformPrincipal:
    """The platform itself, for operator commands (bulk loads): sees every tenant."""

    is_authenticated = True
    is_anonymous = False
    is_superuser = True
    is_staff = True
    pk = None

    def __str__(self) -> str:
        return "platform"


class KeyPrincipal:
    """Who a request authenticated by API key is: its tenant's subtree, its scopes."""

    is_authenticated = True
    is_anonymous = False
    is_superuser = False
    is_staff = False

    def __init__(self, api_key: ApiKey):
        self.api_key = api_key
        self.scope_tenant = api_key.tenant
        self.pk = None

    @property
    def rate_identity(self) -> str:
        """Whose budget the API throttles charge: the key's own, not a user's."""
        return f"key-{self.api_key.pk}"

    def __str__(self) -> str:
        return f"API key {self.api_key.prefix}"
