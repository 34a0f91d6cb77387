"""Small builders for tenants and users; tests state the shape they need."""

from itertools import count

from django.contrib.auth import get_user_model

from accounts.models import Membership, Tenant

_serial = count(1)
PASSWORD = "correct-horse-battery-staple"


def make_tenant(kind: str, parent: Tenant | None = None, slug: str | None = None, **fields):
    n = next(_serial)
    slug = slug or f"{kind}-{n}"
    return Tenant.objects.create(
        name=fields.pop("name", slug.replace("-", " ").title()),
        slug=slug,
        kind=kind,
        parent=parent,
        **fields,
    )


def make_user(username: str, tenant: Tenant | None = None, role: str = "viewer", **fields):
    user = get_user_model().objects.create_user(username=username, password=PASSWORD, **fields)
    if tenant is not None:
        Membership.objects.create(user=user, tenant=tenant, role=role)
    return user
