"""Portal pages. Views stay thin: scope, select, render."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render

from accounts.models import Tenant
from accounts.selectors import top_tenants, visible_ancestors
from reports.tables import ChildTenantTable


@login_required
def home(request):
    """Send the user to their one top tenant, or let them choose among several."""
    tenants = top_tenants(request.user)
    if len(tenants) == 1:
        return redirect("reports:tenant", slug=tenants[0].slug)
    return render(request, "reports/choose_tenant.html", {"tenants": tenants})


def visible_tenant_or_404(request, slug: str) -> Tenant:
    return get_object_or_404(Tenant.objects.visible_to(request.user), slug=slug)


@login_required
def tenant_report(request, slug):
    tenant = visible_tenant_or_404(request, slug)
    children = ChildTenantTable(tenant.get_children().order_by("name"), request=request)
    children.paginate(page=request.GET.get("page", 1), per_page=50)
    return render(
        request,
        "reports/tenant.html",
        {
            "tenant": tenant,
            "ancestors": visible_ancestors(request.user, tenant),
            "children": children,
        },
    )
