"""Text from the request line and from page forms, held to `utilities.inputs`.

Query parameters reach filtersets, forms and hand-written lookups alike; checked
here once, a NUL (which PostgreSQL refuses) or a control character is a 400
naming the parameter on every page and endpoint. Page form posts are checked the
same way; API bodies are checked by the API's parsers instead, which also
answer for JSON.
"""

import contextlib
import zoneinfo

from django.http import HttpResponseBadRequest, HttpResponseNotFound, JsonResponse
from django.utils import timezone

from accounts.selectors import viewer_timezone
from usage_portal.views import is_api_request
from utilities.inputs import querydict_problem
from utilities.text import text_problem

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# Headers whose values are looked up in the database (API keys, tokens).
LOOKED_UP_HEADERS = {"HTTP_AUTHORIZATION": "Authorization"}


def shown(name: str) -> str:
    """A parameter name fit to echo back, its control characters escaped."""
    return name.encode("unicode_escape").decode("ascii") if text_problem(name) else name


def bad_request(request, field: str, message: str):
    if is_api_request(request):
        return JsonResponse({"errors": [{"field": shown(field), "message": message}]}, status=400)
    return HttpResponseBadRequest(
        f"{shown(field)}: {message}", content_type="text/plain; charset=utf-8"
    )


def header_problem(request) -> tuple[str, str] | None:
    for key, name in LOOKED_UP_HEADERS.items():
        problem = text_problem(request.META.get(key, ""))
        if problem:
            return name, problem
    return None


class RequestTextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        problem = header_problem(request) or querydict_problem(request.GET)
        if problem is None and self.is_page_form(request):
            problem = querydict_problem(request.POST)
        if problem is not None:
            return bad_request(request, *problem)
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        # URL patterns of the `str` kind accept any character but "/".
        values = [*view_args, *view_kwargs.values()]
        if any(isinstance(v, str) and text_problem(v) for v in values):
            if is_api_request(request):
                return JsonResponse({"detail": "Not found."}, status=404)
            return HttpResponseNotFound("Not found.", content_type="text/plain")
        return None

    @staticmethod
    def is_page_form(request) -> bool:
        return (
            request.method == "POST"
            and not is_api_request(request)
            and request.content_type in FORM_TYPES
        )


# The URL namespaces whose pages show times in the viewer's zone. The API speaks UTC
# (RFC 3339) to every caller, and the admin keeps the server's zone.
LOCAL_TIME_NAMESPACES = {"reports"}


class ViewerTimeZoneMiddleware:
    """Portal pages show times in the viewer's tenant's zone (`viewer_timezone`);
    everything else, UTC. Usage days are UTC days either way: only the display moves."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        timezone.deactivate()
        try:
            return self.get_response(request)
        finally:
            # Tables fix the zone of their streamed CSVs when built (see reports.tables).
            timezone.deactivate()

    def process_view(self, request, view_func, view_args, view_kwargs):
        match = request.resolver_match
        if match is not None and match.namespace in LOCAL_TIME_NAMESPACES:
            # A zone stored past validation shows UTC rather than an error page.
            with contextlib.suppress(zoneinfo.ZoneInfoNotFoundError, ValueError):
                timezone.activate(zoneinfo.ZoneInfo(viewer_timezone(request.user)))
        return None
