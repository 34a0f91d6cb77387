"""Request rates per caller: ingestion per API key (or user), reads per user.

Rates come from settings (`USAGE_THROTTLE_INGEST`, `USAGE_THROTTLE_READ`); an
exceeded rate answers 429 with `Retry-After`. Counters live in the shared cache
(Redis when configured), so every web process counts the same requests.
"""

from rest_framework.permissions import SAFE_METHODS
from rest_framework.throttling import SimpleRateThrottle

from accounts.models import ApiKey
from utilities.client_address import client_address


class PrincipalRateThrottle(SimpleRateThrottle):
    def get_cache_key(self, request, view):
        if isinstance(request.auth, ApiKey):
            ident = f"key-{request.auth.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            ident = f"ip-{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def get_ident(self, request):
        # DRF's own reading believes any X-Forwarded-For, so a caller could pick
        # a fresh identity per request.
        return client_address(request)


class IngestThrottle(PrincipalRateThrottle):
    """Writes to views that declare `throttle_scope = "ingest"` (the events endpoint)."""

    scope = "ingest"

    def allow_request(self, request, view):
        if request.method in SAFE_METHODS or getattr(view, "throttle_scope", None) != "ingest":
            return True
        return super().allow_request(request, view)


class ReadThrottle(PrincipalRateThrottle):
    scope = "read"

    def allow_request(self, request, view):
        if request.method not in SAFE_METHODS:
            return True
        return super().allow_request(request, view)
