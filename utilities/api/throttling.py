"""Request rates per caller: ingestion per API key (or user), reads per user.

Rates come from settings (`USAGE_THROTTLE_INGEST`, `USAGE_THROTTLE_READ`); an
exceeded rate answers 429 with `Retry-After`. Counters live in the shared cache
(Redis when configured), so every web process counts the same requests.

A caller that is not a user (an API key's principal) names its own budget with a
`rate_identity` attribute; users are counted per user, anonymous callers per
client address.
"""

from rest_framework.permissions import SAFE_METHODS
from rest_framework.throttling import SimpleRateThrottle

from utilities.client_address import client_address


class PrincipalRateThrottle(SimpleRateThrottle):
    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.caller(request)}

    def caller(self, request) -> str:
        user = request.user
        named = getattr(user, "rate_identity", None)
        if named is not None:
            return named
        if user and user.is_authenticated:
            return f"user-{user.pk}"
        return f"ip-{self.get_ident(request)}"

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
