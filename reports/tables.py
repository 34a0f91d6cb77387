import django_tables2 as tables

from accounts.models import Tenant


class ChildTenantTable(tables.Table):
    name = tables.Column(linkify=("reports:tenant", {"slug": tables.A("slug")}))

    class Meta:
        model = Tenant
        fields = ("name", "slug", "kind", "external_id", "is_active")
        attrs = {"class": "table"}
        empty_text = "No children."
