"""/api/v1/ itself: the list of the API's endpoints, with its documentation."""

from django.urls import reverse
from rest_framework.routers import APIRootView

# Endpoint name -> URL name inside the `api` namespace, in the README's order.
ENDPOINTS = {
    "tenants": "tenant-list",
    "events": "event-list",
    "usage": "usage",
    "meters": "meter-list",
    "plans": "plan-list",
    "subscriptions": "subscription-list",
    "statements": "statement-list",
    "margin": "margin",
    "alerts": "alert-list",
    "entitlements": "entitlements",
    "webhooks": "webhook-list",
    "report-schedules": "report-schedule-list",
}


class ApiRootView(APIRootView):
    """The endpoints of the API; `docs` is its interactive documentation
    and `schema` the OpenAPI document."""

    api_root_dict = ENDPOINTS

    def get(self, request, *args, **kwargs):
        response = super().get(request, *args, **kwargs)
        response.data["docs"] = request.build_absolute_uri(reverse("api-docs"))
        response.data["schema"] = request.build_absolute_uri(reverse("schema"))
        return response
