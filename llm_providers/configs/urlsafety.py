"""Which base URLs a tenant may point Switchyard at (SPEC §10).

Link-local and cloud metadata addresses are always refused. Private, loopback and other
non-public addresses only where LLM_BASE_URL_ALLOWLIST names their network. The check runs
when a config is saved and again when a call connects, since a name can resolve
differently later.
"""

import ipaddress
import socket
from functools import lru_cache
from urllib.parse import urlsplit

from django.conf import settings

# Addresses of cloud metadata services, beyond the link-local ranges.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)


class UnsafeBaseURL(ValueError):
    """The base URL or the address it resolves to is not allowed."""


@lru_cache(maxsize=16)
def _allowlist(entries: tuple[str, ...]):
    return tuple(ipaddress.ip_network(e.strip(), strict=False) for e in entries if e.strip())


def allowed_networks():
    return _allowlist(tuple(settings.LLM_BASE_URL_ALLOWLIST))


def check_address(address: str) -> None:
    """Raise UnsafeBaseURL unless a connection to `address` (an IP) is allowed."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if ip in METADATA_ADDRESSES or ip.is_link_local:
        raise UnsafeBaseURL(f"{ip} is a link-local or metadata address, which is never allowed.")
    if ip.is_global and not ip.is_multicast:
        return
    if any(ip in network for network in allowed_networks()):
        return
    raise UnsafeBaseURL(
        f"{ip} is a private, loopback or reserved address not in LLM_BASE_URL_ALLOWLIST."
    )


def resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({info[4][0] for info in infos})


def validate_base_url(url: str, *, resolve_host: bool = True) -> str:
    """Return the normalised URL (no trailing slash) or raise UnsafeBaseURL.

    A host name that does not resolve now is accepted: the check at connect time decides.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeBaseURL("The base URL must be an http:// or https:// URL with a host.")
    if parts.username or parts.password:
        raise UnsafeBaseURL("The base URL must not carry credentials.")
    if parts.query or parts.fragment:
        raise UnsafeBaseURL("The base URL must not have a query or fragment.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeBaseURL("The base URL has an invalid port.") from None
    host = parts.hostname
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        addresses = []
        if resolve_host:
            try:
                addresses = resolve(host, port)
            except (OSError, UnicodeError):
                addresses = []
    for address in addresses:
        check_address(address)
    return url.strip().rstrip("/")
