"""The real PortAttacher: a pod's host veth becomes a port of br-int (OVSDB), with its pod
identity in external_ids, and the node's flows are reconciled to include it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from ipaddress import IPv4Address

from fyke.agent.ports import PodIdentity
from fyke.ovs.ovsdb import DelPort, Ovsdb, pod_port


class OvsPortAttacher:
    def __init__(self, ovsdb: Ovsdb, bridge: str, changed: Callable[[], Awaitable[None]]) -> None:
        self.ovsdb = ovsdb
        self.bridge = bridge
        self.changed = changed  # reconciles the flows; awaited so ADD returns once they exist

    async def attach(self, host_ifname: str, pod: PodIdentity, ip: IPv4Address, mac: str) -> int:
        await self.ovsdb.transact(
            pod_port(
                self.bridge,
                host_ifname,
                pod_namespace=pod.namespace,
                pod_name=pod.name,
                container_id=pod.container_id,
                ip=str(ip),
                mac=mac,
            )
        )
        ofport = await self.ovsdb.get_ofport(host_ifname)
        await self.changed()
        return ofport

    async def detach(self, host_ifname: str) -> None:
        ports = await self.ovsdb.list_ports(self.bridge)
        if not any(p.name == host_ifname for p in ports):
            return  # nothing attached (ADD clears first; DEL repeats): no flows to change
        await self.ovsdb.transact(DelPort(bridge=self.bridge, name=host_ifname))
        await self.changed()

    async def check(self, host_ifname: str) -> bool:
        ports = await self.ovsdb.list_ports(self.bridge)
        return any(p.name == host_ifname and (p.ofport or 0) > 0 for p in ports)
