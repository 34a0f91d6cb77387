"""Requests the portal makes to addresses its users type in.

A user-given URL must not reach the portal's own network: the host is resolved,
every address it resolves to must be public, and the connection goes to the
address that was checked (a second DNS answer cannot swap in a private one).
Redirects are not followed, answers are read up to a limit, timeouts are short.
"""

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

SCHEMES = {"http": 80, "https": 443}


class OutboundRefused(Exception):
    """The URL may not be fetched, or the fetch failed; the message says why."""


class Unresolvable(OutboundRefused):
    """The host name has no address (now)."""


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes


def url_problem(url: str) -> str | None:
    """Why `url` cannot be an outbound address, or None (checked without DNS)."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        return "Use an http:// or https:// address."
    if not parts.hostname:
        return "The address has no host."
    if parts.username or parts.password:
        return "The address may not carry a user name or password."
    try:
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError:
        return "The address's port is not a number from 1 to 65535."
    return None


def checked_address(host: str, port: int, *, allow_private: bool) -> str:
    """An address of `host` to connect to; refused when any address is not public."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise Unresolvable(f"{host} could not be resolved.") from error
    addresses = [info[4][0] for info in infos]
    if not allow_private:
        for address in addresses:
            if not ipaddress.ip_address(address.partition("%")[0]).is_global:
                raise OutboundRefused(
                    f"{host} resolves to a private, loopback or reserved address ({address})."
                )
    return addresses[0]


class PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host, port, *, address, timeout):
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self):
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host, port, *, address, timeout):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.address = address

    def connect(self):
        sock = socket.create_connection((self.address, self.port), self.timeout)
        # The certificate is checked against the name, the socket goes to the address.
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def request(
    url: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
    max_bytes: int = 1024,
    allow_private: bool = False,
) -> Answer:
    """Send one request to a user-given URL; OutboundRefused when it may not or could
    not be sent. The answer's body is read up to `max_bytes` + 1 bytes, so a caller
    can tell an answer over its limit."""
    problem = url_problem(url)
    if problem:
        raise OutboundRefused(problem)
    parts = urlsplit(url)
    port = parts.port or SCHEMES[parts.scheme]
    address = checked_address(parts.hostname, port, allow_private=allow_private)
    kind = PinnedHTTPSConnection if parts.scheme == "https" else PinnedHTTPConnection
    connection = kind(parts.hostname, port, address=address, timeout=timeout)
    target = parts.path or "/"
    if parts.query:
        target = f"{target}?{parts.query}"
    try:
        connection.request(method, target, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read(max_bytes + 1)
        return Answer(response.status, response.getheader("Content-Type", ""), data)
    except (OSError, http.client.HTTPException) as error:
        raise OutboundRefused(f"No answer from {parts.hostname}: {error}") from error
    finally:
        connection.close()
