"""A caller's client address, for the sign-in throttle: the gRPC peer's, or,
when that peer is a trusted proxy (BILLING_TRUSTED_PROXIES: the gateway, a
load balancer), the address it forwards in `x-forwarded-for`.

The chain is read from its right end, where each trusted proxy appended the
address it was called from; the first address that is not a trusted proxy's
is the client's. What the client itself put at the left end is never
believed, so a client cannot choose its address."""

from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv6Address, ip_address
from urllib.parse import unquote

from .domain.networks import IPNetwork as Network

FORWARDED_FOR = "x-forwarded-for"
MAX_ADDRESS = 64


def client_address(
    peer: str, metadata: Iterable[tuple[str, str | bytes]], trusted: Sequence[Network]
) -> str:
    """The client's address, from gRPC's peer string (`ipv4:10.0.0.5:41234`,
    `ipv6:[::1]:41234`, `unix:...`) and the call's metadata."""
    address = _peer_address(peer)
    if address is None:  # a Unix socket: the peer as gRPC names it
        return peer[:MAX_ADDRESS]
    chain = [hop.strip() for value in _forwarded(metadata) for hop in value.split(",")]
    while chain and _trusted(address, trusted):
        hop = chain.pop()
        parsed = _parse(hop)
        if parsed is None:  # not an address: it names the client all the same
            return hop[:MAX_ADDRESS]
        address = parsed
    return str(address)


def _forwarded(metadata: Iterable[tuple[str, str | bytes]]) -> list[str]:
    return [
        value.decode(errors="replace") if isinstance(value, bytes) else value
        for name, value in metadata
        if name == FORWARDED_FOR
    ]


def _peer_address(peer: str) -> IPv4Address | IPv6Address | None:
    kind, _, rest = unquote(peer).partition(":")  # some gRPC versions escape the brackets
    if kind == "ipv4":
        return _parse(rest.rpartition(":")[0])
    if kind == "ipv6":
        return _parse(rest.rpartition(":")[0].strip("[]"))
    return None


def _parse(text: str) -> IPv4Address | IPv6Address | None:
    try:
        address = ip_address(text.split("%")[0])
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: IPv4Address | IPv6Address, trusted: Sequence[Network]) -> bool:
    return any(address.version == network.version and address in network for network in trusted)
