"""Whose brand a page or a mail shows, and the writes that change a brand.

A tenant shows its **effective brand**: its own, else its nearest branded
ancestor's, else the platform's (settings). Pages show the signed-in user's
own tenant's; before sign-in, the brand whose domain the request came to.
"""

import hashlib
from dataclasses import dataclass
from functools import cached_property

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import DisallowedHost, PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.http.request import split_domain_port
from django.urls import reverse
from django.utils.http import is_same_domain
from django_q.tasks import async_task

from accounts.models import NOT_AVAILABLE, Brand, Tenant, reserved_hosts
from accounts.selectors import top_tenants
from accounts.services import user_can_manage
from utilities.colors import readable_ink
from utilities.hostnames import normalized_domain
from utilities.images import ACCEPTED, image_type
from utilities.outbound import OutboundRefused
from utilities.outbound import request as outbound_request

BRAND_KEYS = ("name", "primary_color", "logo_url", "support_email", "domain")
DOMAINS_CACHE_KEY = "brand-domains"
DOMAINS_CACHE_SECONDS = 300


@dataclass(frozen=True)
class EffectiveBrand:
    name: str
    color: str
    logo_src: str  # the portal's own address of the logo; empty without one
    support_email: str
    tenant_id: int | None  # whose brand it is; None: the platform's

    @cached_property
    def ink(self) -> str:
        """The text colour on the brand colour."""
        return readable_ink(self.color)


def platform_brand() -> EffectiveBrand:
    return EffectiveBrand(
        name=settings.USAGE_BRAND_NAME,
        color=settings.USAGE_BRAND_COLOR.lower(),
        logo_src="",
        support_email=settings.USAGE_SUPPORT_EMAIL,
        tenant_id=None,
    )


def logo_src(brand: Brand) -> str:
    if not brand.logo_hash:
        return ""
    return reverse("brand-logo", args=[brand.logo_hash])


def shown_brand(brand: Brand) -> EffectiveBrand:
    """A stored brand as pages show it: an unset name is the tenant's own name (never
    the platform's), an unset colour the platform's."""
    return EffectiveBrand(
        name=brand.name or brand.tenant.name,
        color=brand.primary_color or settings.USAGE_BRAND_COLOR.lower(),
        logo_src=logo_src(brand),
        support_email=brand.support_email,
        tenant_id=brand.tenant_id,
    )


def brands_without_logo_bytes():
    return Brand.objects.select_related("tenant").defer("logo")


def effective_brand(tenant: Tenant) -> EffectiveBrand:
    """The tenant's own brand, else its nearest branded ancestor's, else the platform's."""
    nearest = (
        brands_without_logo_bytes()
        .filter(
            tenant__tree_id=tenant.tree_id,
            tenant__lft__lte=tenant.lft,
            tenant__rght__gte=tenant.rght,
        )
        .order_by("-tenant__level")
        .first()
    )
    return shown_brand(nearest) if nearest else platform_brand()


def brand_for_user(user) -> EffectiveBrand:
    """The brand of a user's own tenant (the first of `top_tenants`, as for the time
    zone); the platform's for operators and users without a membership."""
    if not user.is_authenticated or user.is_superuser:
        return platform_brand()
    tops = top_tenants(user)
    return effective_brand(tops[0]) if tops else platform_brand()


def request_domain(request) -> str:
    try:
        host = request.get_host()
    except DisallowedHost:
        return ""
    return normalized_domain(split_domain_port(host)[0])


def brand_for_domain(domain: str) -> EffectiveBrand | None:
    """The brand whose domain this is; None for the operator's own hosts (which no
    brand may claim, see `Brand.clean`) without reading the database."""
    if not domain or any(is_same_domain(domain, host) for host in reserved_hosts()):
        return None
    if domain not in brand_domains():
        return None
    brand = brands_without_logo_bytes().filter(domain=domain).first()
    return shown_brand(brand) if brand else None


def request_brand(request) -> EffectiveBrand:
    """The brand a page shows: the signed-in user's; before sign-in, the brand of the
    domain the request came to, else the platform's. Read once per request."""
    cached = getattr(request, "_usage_brand", None)
    if cached is None:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            cached = brand_for_user(user)
        else:
            cached = brand_for_domain(request_domain(request)) or platform_brand()
        request._usage_brand = cached
    return cached


def brand_domains() -> frozenset[str]:
    """Every brand's domain; cached, and dropped whenever a brand changes."""
    domains = cache.get(DOMAINS_CACHE_KEY)
    if domains is None:
        domains = frozenset(
            Brand.objects.filter(domain__isnull=False).values_list("domain", flat=True)
        )
        cache.set(DOMAINS_CACHE_KEY, domains, DOMAINS_CACHE_SECONDS)
    return domains


def forget_domains() -> None:
    cache.delete(DOMAINS_CACHE_KEY)


@receiver([post_save, post_delete], sender=Brand, dispatch_uid="brand-domains")
def brand_changed(sender, **kwargs) -> None:
    # Now, for this process's next read, and after commit, for a read in between.
    forget_domains()
    transaction.on_commit(forget_domains)


def logo_file_problem(data: bytes) -> str | None:
    if len(data) > Brand.LOGO_MAX_BYTES:
        return f"The logo is larger than {Brand.LOGO_MAX_BYTES // 1024} KB."
    if image_type(data) is None:
        return f"The logo is not a {ACCEPTED} image."
    return None


def put_logo(brand: Brand, data: bytes | None) -> None:
    """Set (or, with None, remove) the logo's bytes on an unsaved brand; checked first
    with `logo_file_problem`."""
    brand.logo = data
    brand.logo_type = (image_type(data) or "") if data else ""
    brand.logo_hash = hashlib.sha256(data).hexdigest() if data else ""


def prefixed(error: ValidationError) -> ValidationError:
    """A brand's field errors as the tenant API names them (`branding.domain`)."""
    if not hasattr(error, "error_dict"):
        return ValidationError({"branding": error.messages})
    return ValidationError(
        {
            "branding" if key in ("tenant", "__all__") else f"branding.{key}": messages
            for key, messages in error.message_dict.items()
        }
    )


def set_branding(*, user, tenant: Tenant, branding: dict | None) -> Brand | None:
    """Merge the keys given into the tenant's brand; None removes the brand.

    Only the tenant's managers (and those above) write it; a new logo URL is fetched
    after commit by a task, and the portal serves its own copy.
    """
    if not user_can_manage(user, tenant):
        raise PermissionDenied("You need the manager or admin role on this tenant to change it.")
    with transaction.atomic():
        if branding is None:
            Brand.objects.filter(tenant=tenant).delete()
            return None
        brand = Brand.objects.select_for_update().filter(tenant=tenant).first()
        brand = brand or Brand(tenant=tenant)
        old_url = brand.logo_url
        for key in BRAND_KEYS:
            if key in branding:
                setattr(brand, key, branding[key] or ("" if key != "domain" else None))
        if brand.logo_url != old_url:
            put_logo(brand, None)
            brand.logo_problem = ""
        try:
            brand.full_clean()
        except ValidationError as error:
            raise prefixed(error) from None
        try:
            with transaction.atomic():
                brand.save()
        except IntegrityError:
            # Another request took the domain between the check and the write.
            raise ValidationError(
                {"branding.domain": NOT_AVAILABLE.format(what="domain")}
            ) from None
        if brand.logo_url and brand.logo_url != old_url:
            transaction.on_commit(lambda: queue_logo_fetch(brand.pk))
    return brand


def queue_logo_fetch(brand_id: int) -> None:
    async_task(
        "accounts.brands.fetch_logo", brand_id, task_name=f"brand-logo-{brand_id}", group="logos"
    )


def fetch_logo(brand_id: int) -> str:
    """Fetch the brand's logo URL into the portal's copy; why not, when it can't.

    Runs as a task: a slow or hostile address never holds a request. The result is
    kept only if the URL is still the one fetched."""
    brand = Brand.objects.filter(pk=brand_id).defer("logo").first()
    if brand is None or not brand.logo_url:
        return "no logo URL"
    url = brand.logo_url
    data, problem = None, None
    try:
        answer = outbound_request(
            url,
            timeout=settings.USAGE_LOGO_TIMEOUT_SECONDS,
            max_bytes=Brand.LOGO_MAX_BYTES,
            allow_private=settings.USAGE_LOGO_ALLOW_PRIVATE,
        )
    except OutboundRefused as error:
        problem = str(error)
    else:
        if answer.status != 200:
            problem = f"The logo address answered HTTP {answer.status}."
        else:
            problem = logo_file_problem(answer.body)
            data = None if problem else answer.body
    stored = Brand(pk=brand.pk)
    put_logo(stored, data)
    Brand.objects.filter(pk=brand_id, logo_url=url).update(
        logo=stored.logo,
        logo_type=stored.logo_type,
        logo_hash=stored.logo_hash,
        logo_problem=(problem or "")[:300],
    )
    return problem or "stored"
