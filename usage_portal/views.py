"""Site-wide views: health check and error pages (JSON under /api/, HTML elsewhere)."""

from django.db import connection
from django.http import JsonResponse
from django.views import defaults

from utilities.api.errors import json_not_found, json_server_error


def is_api_request(request) -> bool:
    return request.path.startswith("/api/")


def not_found(request, exception=None):
    if is_api_request(request):
        return json_not_found(request, exception)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if is_api_request(request):
        return json_server_error(request)
    return defaults.server_error(request)


def healthz(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
