"""Settings that list networks (`127.0.0.0/8,::1`): one parser for all."""

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(text: str) -> tuple[IPNetwork, ...]:
    """The comma-separated addresses or networks of a setting; ValueError
    naming the first that is neither."""
    return tuple(
        ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()
    )
