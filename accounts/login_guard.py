"""Against password guessing: failed sign-ins are counted per username and client
address in the shared cache; at the limit that pair is refused until the window
passes. The session login page and the API token endpoint both use it."""

import hashlib

from django.conf import settings
from django.core.cache import cache


def guard_key(request, username: str) -> str:
    address = request.META.get("REMOTE_ADDR", "")
    digest = hashlib.sha256(f"{username.strip().lower()}|{address}".encode()).hexdigest()
    return f"login-failures:{digest}"


def locked_for(request, username: str) -> int:
    """Seconds the pair stays locked, or 0 when a sign-in may be tried."""
    if not username:
        return 0
    failures = cache.get(guard_key(request, username), 0)
    return settings.LOGIN_FAILURE_WINDOW_SECONDS if failures >= settings.LOGIN_FAILURE_LIMIT else 0


def record_failure(request, username: str) -> None:
    key = guard_key(request, username)
    # add() starts the window on the first failure; incr() keeps its expiry.
    if not cache.add(key, 1, settings.LOGIN_FAILURE_WINDOW_SECONDS):
        try:
            cache.incr(key)
        except ValueError:  # expired between add() and incr()
            cache.add(key, 1, settings.LOGIN_FAILURE_WINDOW_SECONDS)


def clear_failures(request, username: str) -> None:
    cache.delete(guard_key(request, username))
