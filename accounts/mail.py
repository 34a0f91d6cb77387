"""Mail to a tenant's managers, in the brand of the tenant each recipient belongs to:
the brand's name as the sender's display name and in the subject, replies to its
support address."""

from email.utils import formataddr, parseaddr

from django.conf import settings
from django.core.mail import EmailMessage

from accounts.brands import EffectiveBrand, effective_brand
from accounts.models import Membership, Tenant
from utilities.text import header_text


def sender(brand: EffectiveBrand) -> str:
    """The brand's name over the portal's own sending address."""
    address = parseaddr(settings.DEFAULT_FROM_EMAIL)[1] or settings.DEFAULT_FROM_EMAIL
    return formataddr((header_text(brand.name), address))


def branded_mail(brand: EffectiveBrand, *, subject: str, body: str, to: list[str]) -> EmailMessage:
    signature = f"\n-- \n{brand.name}\n"
    if brand.support_email:
        signature += f"Questions: {brand.support_email}\n"
    return EmailMessage(
        subject=header_text(f"[{brand.name}] {subject}"),
        body=body + signature,
        from_email=sender(brand),
        to=to,
        reply_to=[brand.support_email] if brand.support_email else None,
    )


def managers_by_brand(tenants: list[Tenant]) -> list[tuple[EffectiveBrand, list[str]]]:
    """The active managers (with an address) of the tenants, grouped by the brand each
    one's tenant shows; someone managing several of them is mailed once, in the brand
    of the first tenant listed."""
    rows = (
        Membership.objects.filter(tenant__in=tenants, role__in=Membership.MANAGING_ROLES)
        .exclude(user__email="")
        .filter(user__is_active=True)
        .values_list("tenant_id", "user__email")
    )
    emails_of: dict[int, set[str]] = {}
    for tenant_id, email in rows:
        emails_of.setdefault(tenant_id, set()).add(email)
    groups: dict[EffectiveBrand, list[str]] = {}
    mailed: set[str] = set()
    for tenant in tenants:
        fresh = sorted(emails_of.get(tenant.pk, set()) - mailed)
        if fresh:
            groups.setdefault(effective_brand(tenant), []).extend(fresh)
            mailed.update(fresh)
    return list(groups.items())
