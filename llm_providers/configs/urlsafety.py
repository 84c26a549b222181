"""Which base URLs a tenant may point Switchyard at (SPEC §10).

Link-local and cloud metadata addresses are always refused. Private, loopback and other
non-public addresses only where LLM_BASE_URL_ALLOWLIST names their network. The check runs
when a config is saved and again when a call connects, since a name can resolve
differently later.
"""

import ipaddress
import logging
import socket
from functools import lru_cache
from urllib.parse import urlsplit

from django.conf import settings

logger = logging.getLogger(__name__)

# Addresses of cloud metadata services, beyond the link-local ranges.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)


# IPv6 forms that carry an IPv4 address a packet may end up at; that address is checked
# too, so that e.g. NAT64's 64:ff9b::a9fe:a9fe is not a way to 169.254.169.254.
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix
NAT64_LOCAL_PREFIX = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215 local-use prefix
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # ::a.b.c.d, deprecated (RFC 4291)
SIIT_PREFIX = ipaddress.ip_network("::ffff:0:0:0/96")  # ::ffff:0:a.b.c.d (RFC 2765)
# `ipaddress` calls these global; they are not addresses a provider is reached at.
NOT_PUBLIC_V6 = (ipaddress.ip_network("fec0::/10"), IPV4_COMPATIBLE)


class UnsafeBaseURL(ValueError):
    """The base URL or the address it resolves to is not allowed."""


class InvalidAllowlistEntry(ValueError):
    """An LLM_BASE_URL_ALLOWLIST entry is not an IP network (reported by checks.py)."""


def parse_allowlist_entry(entry: str):
    """The network an allowlist entry names; InvalidAllowlistEntry for anything else.

    Host names are not networks: what a name resolves to can change under a check, so
    an operator names the addresses (e.g. 127.0.0.0/8 rather than localhost).
    """
    try:
        return ipaddress.ip_network(entry.strip(), strict=False)
    except ValueError:
        raise InvalidAllowlistEntry(
            f"{entry.strip()!r} is not an IP address or network (CIDR); LLM_BASE_URL_ALLOWLIST "
            "takes addresses and networks only, e.g. 127.0.0.0/8,::1/128 instead of localhost."
        ) from None


@lru_cache(maxsize=16)
def _allowlist(entries: tuple[str, ...]):
    networks = []
    for entry in entries:
        if not entry.strip():
            continue
        try:
            networks.append(parse_allowlist_entry(entry))
        except InvalidAllowlistEntry as exc:
            # Fail closed: a bad entry allows nothing. The system check (checks.py)
            # reports it at start-up; a save must never become a 500 because of it.
            logger.error("ignoring LLM_BASE_URL_ALLOWLIST entry: %s", exc)
    return tuple(networks)


def allowed_networks():
    return _allowlist(tuple(settings.LLM_BASE_URL_ALLOWLIST))


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address `ip` carries in a transition form (NAT64, SIIT, 6to4, Teredo…)."""
    found = []
    value = int(ip)
    low32 = ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip in NAT64_PREFIX or ip in SIIT_PREFIX or (ip in IPV4_COMPATIBLE and value > 1):
        found.append(low32)
    if ip in NAT64_LOCAL_PREFIX:
        # Its prefix length is the network's choice (/48 to /96): try the /96 position
        # (above) and the /48 one (RFC 6052 §2.2: bits 48-63 and 72-87).
        found.append(low32)
        found.append(ipaddress.IPv4Address(((value >> 64) & 0xFFFF) << 16 | (value >> 40) & 0xFFFF))
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)  # (server, client), the client already de-obfuscated
    return found


def check_address(address: str) -> None:
    """Raise UnsafeBaseURL unless a connection to `address` (an IP) is allowed.

    Runs at save time and on the peer address of every connection (http.py).
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        else:
            for inner in embedded_ipv4(ip):
                _check_ip(inner)
    _check_ip(ip)


def _check_ip(ip) -> None:
    if ip in METADATA_ADDRESSES or ip.is_link_local:
        raise UnsafeBaseURL(f"{ip} is a link-local or metadata address, which is never allowed.")
    if _is_public(ip):
        return
    if any(ip in network for network in allowed_networks()):
        return
    raise UnsafeBaseURL(
        f"{ip} is a private, loopback or reserved address not in LLM_BASE_URL_ALLOWLIST."
    )


def _is_public(ip) -> bool:
    if ip.version == 6 and any(ip in network for network in NOT_PUBLIC_V6):
        return False
    return ip.is_global and not ip.is_multicast


def resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({info[4][0] for info in infos})


def validate_base_url(url: str, *, resolve_host: bool = True) -> str:
    """Return the normalised URL (no trailing slash) or raise UnsafeBaseURL.

    A host name that does not resolve now is accepted: the check at connect time decides.
    """
    try:
        parts = urlsplit(url.strip())
        hostname = parts.hostname
    except ValueError:  # a malformed bracketed host: http://[zz::1]/, http://[::1/
        raise UnsafeBaseURL("The base URL's host is not valid.") from None
    if parts.scheme not in ("http", "https") or not hostname:
        raise UnsafeBaseURL("The base URL must be an http:// or https:// URL with a host.")
    if parts.username or parts.password:
        raise UnsafeBaseURL("The base URL must not carry credentials.")
    if parts.query or parts.fragment:
        raise UnsafeBaseURL("The base URL must not have a query or fragment.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeBaseURL("The base URL has an invalid port.") from None
    host = hostname
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
