"""The admin's date drill-down drawn from a list's bounds (`utilities.admin_lists`),
for `templates/admin/change_list.html`."""

from django import template
from django.contrib.admin.templatetags.base import InclusionAdminNode

from utilities.admin_lists import date_hierarchy_from_bounds

register = template.Library()


@register.tag(name="date_hierarchy_from_bounds")
def date_hierarchy_from_bounds_tag(parser, token):
    return InclusionAdminNode(
        parser,
        token,
        func=date_hierarchy_from_bounds,
        template_name="date_hierarchy.html",
        takes_context=False,
    )
