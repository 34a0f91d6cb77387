"""The signature receivers check: `t=<unix seconds>,v1=<hex HMAC-SHA256>` of
"<t>.<raw body>" keyed by the secret's UTF-8 bytes (Stripe's scheme). The time is
signed too, so a receiver can refuse a replayed delivery by its age."""

import hashlib
import hmac
import secrets

SIGNATURE_HEADER = "Usage-Portal-Signature"
EVENT_HEADER = "Usage-Portal-Event"
TOLERANCE_SECONDS = 300


def new_secret() -> str:
    return f"whsec_{secrets.token_urlsafe(32)}"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    signed = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify(secret: str, header: str, body: bytes, now: int, tolerance=TOLERANCE_SECONDS) -> bool:
    """What a receiver does: the header parses, is recent, and one v1 matches."""
    parts = [p.partition("=") for p in header.split(",")]
    timestamps = [v for k, _, v in parts if k == "t"]
    if len(timestamps) != 1 or not timestamps[0].isdigit():
        return False
    timestamp = int(timestamps[0])
    if abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body)
    return any(k == "v1" and hmac.compare_digest(v, expected) for k, _, v in parts)
