"""What an API key may do: its scopes. Users are governed by roles in the services."""

from rest_framework import permissions

from accounts.models import ApiKey


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
