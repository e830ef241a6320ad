"""Where an alert webhook may be posted: global addresses only, unless the
operator of this service allows more networks (BILLING_ALERT_WEBHOOK_ALLOW_
NETWORKS). A webhook's URL is the API caller's to choose; without this, the
worker would post signed alerts to the cloud's metadata service, the
database's port or anything else inside the network it runs in.

An address is read as the resolver reads it (getaddrinfo on the literal:
127.1, 0177.0.0.1, 2130706433 and 0x7f000001 are all 127.0.0.1), and an
IPv6 address is judged with the IPv4 address it carries, if any (mapped,
NAT64, 6to4, Teredo)."""

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence

from ..domain.networks import IPAddress, IPNetwork

# host, port -> the addresses it resolves to (injected: tests answer names locally).
Resolve = Callable[[str, int], Awaitable[list[str]]]

ALLOW_SETTING = "BILLING_ALERT_WEBHOOK_ALLOW_NETWORKS"
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# Names that are loopback by definition (RFC 6761), never looked up.
_LOOPBACK = (ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1"))
# Suffixes of names only a private network answers (ICANN's .internal holds
# the clouds' metadata.google.internal; mDNS; RFC 8375's home.arpa).
_PRIVATE_SUFFIXES = (".internal", ".local", ".localdomain", ".home.arpa")


def literal_address(host: str) -> IPAddress | None:
    """The address `host` spells, in any notation the resolver takes; None
    for a name."""
    try:
        found = socket.getaddrinfo(host, None, flags=socket.AI_NUMERICHOST)
    except (OSError, UnicodeError):
        return None
    return ipaddress.ip_address(str(found[0][4][0]).partition("%")[0])


def is_loopback_name(host: str) -> bool:
    """localhost and its subdomains (RFC 6761): loopback without a lookup."""
    host = host.lower().rstrip(".")
    return host == "localhost" or host.endswith(".localhost")


def refusal(host: str, address: IPAddress, allowed: Sequence[IPNetwork]) -> str | None:
    """Why alerts may not be posted to `address` (what `host` is or
    resolves to); None when they may."""
    if is_allowed(address, allowed):
        return None
    for form in reversed(_forms(address)):  # the IPv4 address carried says more
        kind = _kind(form)
        if kind is not None:
            shown = [str(address)] if host != str(address) else []
            shown += [f"IPv4 {form}"] if form != address else []
            about = f"{host} ({', '.join(shown)})" if shown else host
            return f"{about} is {kind}, not a global address"
    return None


def is_allowed(address: IPAddress, allowed: Sequence[IPNetwork]) -> bool:
    """Whether `address` is in a network the service allows (BILLING_ALERT_
    WEBHOOK_ALLOW_NETWORKS), as written or as the IPv4 address it carries."""
    forms = {address, *_forms(address)}
    return any(form in network for form in forms for network in allowed)


def url_refusal(scheme: str, host: str, allowed: Sequence[IPNetwork]) -> str | None:
    """Why a webhook URL is refused when it is set, as far as can be known
    without looking its name up (the worker checks what it resolves to)."""
    literal = literal_address(host)
    addresses: Sequence[IPAddress] = ()
    if literal is not None:
        addresses = (literal,)
    elif is_loopback_name(host):
        addresses = _LOOPBACK
    for address in addresses:
        refused = refusal(host, address, allowed)
        if refused is not None:
            return refused
    if not addresses and not allowed and _private_name(host):
        return f"{host} names a host of a private network, not a global one"
    if scheme != "https" and not (addresses and all(is_allowed(a, allowed) for a in addresses)):
        return "must be https (http only to an address the service allows: " + ALLOW_SETTING + ")"
    return None


async def resolve_host(host: str, port: int) -> list[str]:
    """The system resolver's addresses for `host` (socket.gaierror if none)."""
    loop = asyncio.get_running_loop()
    found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in found))


def _private_name(host: str) -> bool:
    host = host.lower().rstrip(".")
    return "." not in host or host.endswith(_PRIVATE_SUFFIXES)


def _forms(address: IPAddress) -> list[IPAddress]:
    """The addresses `address` stands for: an IPv4 address mapped or
    translated (NAT64, as DNS64 answers on IPv6-only networks) into IPv6 is
    that IPv4 address; a 6to4 or Teredo one is itself and the IPv4 address
    it carries."""
    if isinstance(address, ipaddress.IPv4Address):
        return [address]
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if address in _NAT64:
        return [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
    forms: list[IPAddress] = [address]
    if address.sixtofour is not None:
        forms.append(address.sixtofour)
    if address.teredo is not None:
        forms.extend(address.teredo)
    return forms


def _kind(address: IPAddress) -> str | None:
    """What sort of non-global address `address` is; None for a global one."""
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (where cloud metadata services answer)"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private:
        return "a private address"
    if address.is_reserved or not address.is_global:
        return "a reserved address"
    return None
