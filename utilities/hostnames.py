"""Host names a tenant may claim as its portal address."""

import ipaddress
import re

from django.utils.http import is_same_domain

LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def normalized_domain(value: str) -> str:
    """Domains compare case-insensitively and without a final dot."""
    return value.strip().lower().rstrip(".")


def domain_problem(domain: str, reserved=()) -> str | None:
    """Why a normalized `domain` can't be a portal address, or None.

    `reserved` are the operator's own host patterns (ALLOWED_HOSTS): a tenant
    claiming one of them would show its brand to everyone signing in there.
    """
    if ":" in domain or "/" in domain:
        return "Give the host name alone, without a scheme, port or path."
    try:
        ipaddress.ip_address(domain)
    except ValueError:
        pass
    else:
        return "Give a host name, not an IP address."
    labels = domain.split(".")
    if len(domain) > 253 or len(labels) < 2 or not all(LABEL.fullmatch(x) for x in labels):
        return (
            "Give a host name such as portal.example.com: letters, digits and hyphens, "
            "in at least two parts separated by dots."
        )
    if any(pattern == "*" or is_same_domain(domain, pattern) for pattern in reserved):
        return "This host name is the portal's own; choose one of yours."
    return None
