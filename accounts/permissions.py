"""What an API key may do: its scopes. Users are governed by roles in the services."""

from rest_framework import permissions

from accounts.models import ApiKey, Tenant


class ApiKeyScope(permissions.BasePermission):
    """Keys read with the `read` scope; they write only where a view names a scope."""

    message = "This API key lacks the scope for this request."

    def has_permission(self, request, view):
        if not isinstance(request.auth, ApiKey):
            return True
        if request.method in permissions.SAFE_METHODS:
            return request.auth.has_scope(ApiKey.Scope.READ)
        scope = getattr(view, "key_write_scope", None)
        return scope is not None and request.auth.has_scope(scope)


def managed_by_person(request):
    """Tenants the signed-in person manages; none for an API key, whatever its scope:
    webhooks and scheduled reports are people's settings, and another's answer 404."""
    if isinstance(request.auth, ApiKey):
        return Tenant.objects.none()
    return Tenant.objects.managed_by(request.user)


class PeopleOnly(permissions.BasePermission):
    """People's settings (webhooks, scheduled reports): an API key may not list or
    create them (403), and finds none of them by id (404, see `managed_by_person`)."""

    message = "This is managed by signed-in users, not API keys."

    def has_permission(self, request, view):
        return not isinstance(request.auth, ApiKey) or getattr(view, "detail", False)
