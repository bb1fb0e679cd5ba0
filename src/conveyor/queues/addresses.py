"""Refusing broker addresses inside the network (`CONVEYOR_DENY_PRIVATE_QUEUE_URLS`).

A URL's text proves little: `127.1`, `2130706433`, `localhost.` and any DNS name can
all lead to a loopback or private address. So the host names of a queue's URL are
resolved, at registration and again each time a backend connects (a name may change
what it resolves to), and every address must be a public one: loopback, private
(10/8, 172.16/12, 192.168/16, fc00::/7 and so fd00::/8), link-local (169.254/16,
fe80::/10, the cloud metadata service), shared, reserved and multicast ones are refused,
IPv4 and IPv6 alike, IPv4-mapped IPv6 as its IPv4 address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

from conveyor.queues.model import QueueType, url_hosts

_METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata"})


def forbidden(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast


async def private_problem(queue_type: QueueType, url: str | None) -> str | None:
    """Why `url` leads inside the network (None: every address it resolves to is public)."""
    if url is None:
        return None
    loop = asyncio.get_running_loop()
    for host in url_hosts(queue_type, url):
        name = host.lower().rstrip(".")
        if name in _METADATA_HOSTS or name == "localhost" or name.endswith(".localhost"):
            return f"{host} is a private address (refused here)"
        try:
            found = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return f"{host} does not resolve to an address"
        for *_, sockaddr in found:
            address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            if forbidden(address):
                return f"{host} resolves to {address}, a private address (refused here)"
    return None
