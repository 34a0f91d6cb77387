"""The scheduled reports page of a tenant (its managers), and unsubscribing from a
report's mail (anyone holding the link)."""

import re

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import validate_email
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from accounts.scoping import visible_tenant_or_404
from accounts.selectors import visible_ancestors
from accounts.services import user_can_manage
from reports.models import ReportSchedule
from reports.scheduled import unsubscribe
from reports.schedules import save_schedule


class ScheduleForm(forms.Form):
    frequency = forms.ChoiceField(choices=ReportSchedule.Frequency.choices)
    recipients = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Email addresses, separated by commas or lines; up to 20.",
    )

    def clean_recipients(self):
        addresses = [a for a in re.split(r"[\s,;]+", self.cleaned_data["recipients"]) if a]
        if not addresses:
            raise ValidationError("Give at least one address.")
        if len(addresses) > ReportSchedule.MAX_RECIPIENTS:
            raise ValidationError(f"At most {ReportSchedule.MAX_RECIPIENTS} addresses.")
        for address in addresses:
            try:
                validate_email(address)
            except ValidationError:
                raise ValidationError(f"{address!r} is not an email address.") from None
        return list(dict.fromkeys(a.lower() for a in addresses))


def managed_tenant(request, slug):
    tenant = visible_tenant_or_404(request.user, slug)
    if not user_can_manage(request.user, tenant):
        raise PermissionDenied("Only the tenant's managers set up its scheduled reports.")
    return tenant


@login_required
@require_http_methods(["GET", "POST"])
def schedules_page(request, slug):
    tenant = managed_tenant(request, slug)
    form = ScheduleForm(request.POST if "add" in request.POST else None)
    if request.method == "POST":
        if "delete" in request.POST:
            pk = request.POST["delete"]
            schedule = get_object_or_404(
                ReportSchedule, pk=pk if pk.isdigit() else 0, tenant=tenant
            )
            schedule.delete()
            messages.success(request, "The scheduled report was removed.")
            return redirect("reports:schedules", slug=tenant.slug)
        if form.is_valid() and added(request, tenant, form):
            messages.success(request, "Scheduled: the first report goes out after its period ends.")
            return redirect("reports:schedules", slug=tenant.slug)
    context = {
        "tenant": tenant,
        "ancestors": visible_ancestors(request.user, tenant),
        "schedules": tenant.report_schedules.prefetch_related("sent"),
        "form": form,
    }
    return render(request, "reports/schedules.html", context, status=400 if form.errors else 200)


def added(request, tenant, form) -> bool:
    """Save the form's schedule; False with the reason on the form when refused."""
    try:
        save_schedule(
            ReportSchedule(created_by=request.user), user=request.user, tenant=tenant,
            **form.cleaned_data,
        )  # fmt: skip
    except ValidationError as error:
        for problem in error.messages:
            form.add_error(None, problem)
        return False
    return True


@require_http_methods(["GET", "POST"])
def unsubscribe_page(request, token):
    """GET asks, POST removes: mail scanners that open links change nothing."""
    if request.method == "GET":
        return render(request, "reports/unsubscribe.html", {"token": token})
    result = unsubscribe(token)
    if result is None:
        return render(request, "reports/unsubscribe.html", {"invalid": True}, status=400)
    schedule, email = result
    return render(request, "reports/unsubscribe.html", {"done": True, "email": email,
                                                         "schedule": schedule})  # fmt: skip
