import pytest
from django.core.exceptions import ValidationError

from accounts.models import Tenant
from tests.factories import make_tenant

KINDS = [k.value for k in Tenant.Kind]
ALLOWED = {
    ("partner", None),
    ("reseller", None),
    ("reseller", "partner"),
    ("organization", "reseller"),
    ("agent", "organization"),
}


@pytest.fixture
def one_of_each(db):
    partner = make_tenant("partner")
    reseller = make_tenant("reseller", partner)
    org = make_tenant("organization", reseller)
    agent = make_tenant("agent", org)
    return {"partner": partner, "reseller": reseller, "organization": org, "agent": agent}


@pytest.mark.parametrize("parent_kind", [None, *KINDS])
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_and_parent_combination(one_of_each, kind, parent_kind):
    parent = one_of_each[parent_kind] if parent_kind else None
    tenant = Tenant(name="New", slug="new-one", kind=kind, parent=parent)
    if (kind, parent_kind) in ALLOWED:
        tenant.full_clean()
        tenant.save()
        assert tenant.get_ancestors().count() == (parent.level + 1 if parent else 0)
    else:
        with pytest.raises(ValidationError) as caught:
            tenant.full_clean()
        assert "parent" in caught.value.message_dict
        assert (
            "parent must be" in caught.value.message_dict["parent"][0]
            or "top of the tree" in (caught.value.message_dict["parent"][0])
        )


def test_kind_change_that_orphans_children_is_refused(one_of_each):
    org = one_of_each["organization"]
    org.kind = Tenant.Kind.RESELLER
    org.parent = None
    with pytest.raises(ValidationError) as caught:
        org.full_clean()
    assert "kind" in caught.value.message_dict


def test_tenant_cannot_move_under_its_own_descendant(db):
    partner = make_tenant("partner")
    other = make_tenant("partner")
    reseller = make_tenant("reseller", partner)
    reseller.parent = other
    reseller.full_clean()  # a legal move
    partner.refresh_from_db()
    partner.parent = reseller
    with pytest.raises(ValidationError) as caught:
        partner.full_clean()
    assert "parent" in caught.value.message_dict


def test_external_id_unique_only_when_set(db):
    make_tenant("partner", external_id="")
    make_tenant("partner", external_id="")
    make_tenant("partner", external_id="P-1")
    duplicate = Tenant(name="Dup", slug="dup", kind="partner", external_id="P-1")
    with pytest.raises(ValidationError) as caught:
        duplicate.full_clean()
    assert "external_id" in caught.value.message_dict
    assert Tenant.objects.filter(external_id__isnull=True).count() == 2


def test_slug_unique_and_well_formed(db):
    make_tenant("partner", slug="acme")
    for slug, reason in [("acme", "not available"), ("Not A Slug", "")]:
        with pytest.raises(ValidationError) as caught:
            Tenant(name="X", slug=slug, kind="partner").full_clean()
        assert "slug" in caught.value.message_dict
        assert reason in caught.value.message_dict["slug"][0]


def test_timezone_and_currency_validated(db):
    with pytest.raises(ValidationError) as caught:
        Tenant(
            name="X", slug="x", kind="partner", timezone="Mars/Base", currency="usd"
        ).full_clean()
    assert set(caught.value.message_dict) == {"timezone", "currency"}
