"""Where a pod's host-side veth meets the switch: the `PortAttacher` protocol.

The agent's real attacher adds the host end to the OVS bridge `br-int` (OVSDB) and installs the
pod's forwarding flows; it lives with the OVS code. `InMemoryPortAttacher` keeps ports in a dict
for tests and for wiring without OVS.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Protocol


@dataclass(frozen=True, slots=True, kw_only=True)
class PodIdentity:
    """Which attachment a port belongs to (Kubernetes fields empty outside Kubernetes)."""

    container_id: str
    ifname: str
    namespace: str = ""
    name: str = ""
    uid: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}" if self.name else self.container_id


class PortAttacher(Protocol):
    async def attach(self, host_ifname: str, pod: PodIdentity, ip: IPv4Address, mac: str) -> int:
        """Attach the host end; returns its OpenFlow port number. Repeats are safe."""
        ...

    async def detach(self, host_ifname: str) -> None:
        """Detach the host end; a port that is not attached is not an error."""
        ...

    async def check(self, host_ifname: str) -> bool:
        """Is the host end attached?"""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Port:
    ofport: int
    pod: PodIdentity
    ip: IPv4Address
    mac: str


class InMemoryPortAttacher:
    """A `PortAttacher` with no switch behind it: ports live in `self.ports`."""

    def __init__(self) -> None:
        self.ports: dict[str, Port] = {}
        self._next_ofport = 1
        self._lock = asyncio.Lock()

    async def attach(self, host_ifname: str, pod: PodIdentity, ip: IPv4Address, mac: str) -> int:
        async with self._lock:
            old = self.ports.get(host_ifname)
            ofport = old.ofport if old else self._next_ofport
            if old is None:
                self._next_ofport += 1
            self.ports[host_ifname] = Port(ofport=ofport, pod=pod, ip=ip, mac=mac)
            return ofport

    async def detach(self, host_ifname: str) -> None:
        async with self._lock:
            self.ports.pop(host_ifname, None)

    async def check(self, host_ifname: str) -> bool:
        return host_ifname in self.ports
