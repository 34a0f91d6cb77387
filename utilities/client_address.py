"""The client's address, as far as this deployment can know it.

Behind a reverse proxy every request arrives from the proxy's address; the
client's own is in X-Forwarded-For, a header anyone can also write. So the header
is believed only when REMOTE_ADDR is a trusted proxy (settings
`USAGE_TRUSTED_PROXIES`), and only as far as trusted proxies wrote it: read from
the right, the first address that is not a trusted proxy is the client's.
"""

import ipaddress
from functools import lru_cache

from django.conf import settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=8)
def trusted_networks(entries: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def parsed_address(value: str) -> Address | None:
    """An address as proxies write it (`a.b.c.d`, `a.b.c.d:port`, `[v6]:port`), or None."""
    text = value.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def is_trusted(address: Address | None, networks: tuple) -> bool:
    return address is not None and any(address in network for network in networks)


def client_address(request) -> str:
    """The address a request came from: REMOTE_ADDR, or behind trusted proxies the
    right-most X-Forwarded-For entry that no trusted proxy wrote."""
    remote = request.META.get("REMOTE_ADDR", "")
    networks = trusted_networks(tuple(settings.USAGE_TRUSTED_PROXIES))
    if not is_trusted(parsed_address(remote), networks):
        return remote
    client = remote
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
    for hop in reversed(forwarded):
        address = parsed_address(hop)
        if address is None:
            # Trusted proxies write addresses; past an entry that is none, nothing
            # left of it can be believed either.
            break
        client = str(address)
        if not is_trusted(address, networks):
            break
    return client
