"""Against password guessing: failed sign-ins are counted per account and client
address in the shared cache; at the limit that pair is refused until the window
passes. The session login page and the API token endpoint both use it.

The account is the username as sign-in resolves it, not as typed: Django signs
`ｐartner` (fullwidth p) in as `partner`, so both must share one count. The
address is the client's, behind trusted proxies too (`client_address`).
"""

import hashlib
import unicodedata

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.cache import cache

from utilities.client_address import client_address


def login_identity(username: str) -> str:
    """The account a typed username names: NFKC as `normalize_username` applies it,
    without the whitespace the forms strip, case-folded (and folded back to NFKC)."""
    normalized = AbstractBaseUser.normalize_username(username).strip()
    return unicodedata.normalize("NFKC", normalized.casefold())


def guard_key(request, username: str) -> str:
    pair = f"{login_identity(username)}|{client_address(request)}"
    return f"login-failures:{hashlib.sha256(pair.encode('utf-8', 'surrogatepass')).hexdigest()}"


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
