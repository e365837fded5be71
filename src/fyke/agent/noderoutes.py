"""The node route controller: how this node reaches the pods of every other node.

It watches Nodes. A peer is another Node with a podCIDR and an InternalIP. With a tunnel
(geneve, vxlan) the peers become tunnel flows (fyke.datapath.tunnel), reconciled with the
rest of the node's flows; in noEncap mode ("none") they become kernel routes in this
node's namespace, `PEER_POD_CIDR via PEER_NODE_IP`, tagged with fyke's route protocol
number so that routes of nodes that left (even while the agent was down) are found and
removed. A node joining or leaving changes exactly its own flows or route.

The userspace (netdev) datapath resolves a tunnel's next hop with its own neighbor cache,
learnt by snooping ARP: the first packet to a peer it has not seen is dropped while it
asks (a 1 s TCP SYN retransmission). So with that datapath the controller also resolves
each peer's MAC through the node's kernel and sets it in OVS (`tnl/neigh/set`), flushing
and setting them again when a peer leaves (a node that comes back under the same IP has a
new MAC). A restarted agent keeps the entries OVS holds (flushing them would drop traffic
to every peer until each is resolved again) and re-checks each once.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from lightkube import AsyncClient
from pyroute2 import IPRoute  # type: ignore[import-untyped]

from fyke.datapath.tunnel import PeerNode
from fyke.kube import resources
from fyke.kube.reflector import Change, Reflector

log = logging.getLogger("fyke.agent.noderoutes")

# Route protocol number fyke's routes carry (rtnetlink RTPROT_*; values above 4 are free
# for routing daemons, 0xFA is not taken by iproute2's rt_protos list).
RTPROT_FYKE = 0xFA


def link_with_address(ip: str) -> dict[str, Any] | None:
    """The link (as `ip -j addr` shows it) in this namespace that holds address `ip`."""
    out = subprocess.run(["ip", "-j", "addr", "show"], capture_output=True, text=True).stdout
    for link in json.loads(out or "[]"):
        if any(a.get("local") == ip for a in link.get("addr_info", [])):
            return dict(link)
    return None


def internal_ip(node: dict[str, Any]) -> str | None:
    for a in node.get("status", {}).get("addresses", []) or []:
        if a.get("type") == "InternalIP" and a.get("address"):
            return str(a["address"])
    return None


def peers_of(nodes: list[dict[str, Any]], me: str) -> list[PeerNode]:
    out = []
    for node in nodes:
        name = node.get("metadata", {}).get("name", "")
        cidr = node.get("spec", {}).get("podCIDR")
        ip = internal_ip(node)
        if name == me or not cidr or not ip:
            continue
        try:
            ipaddress.IPv4Network(cidr)
            ipaddress.IPv4Address(ip)
        except ValueError:
            log.warning("node %s: podCIDR %r or InternalIP %r is not IPv4; skipped", name, cidr, ip)
            continue
        out.append(PeerNode(name=name, ip=ip, pod_cidr=cidr))
    return sorted(out, key=lambda p: p.name)


class KernelRoutes:
    """`PEER_POD_CIDR via PEER_NODE_IP` routes in this namespace's main table."""

    def installed(self) -> dict[str, str]:
        with IPRoute() as ipr:
            out: dict[str, str] = {}
            for r in ipr.get_routes(family=2, proto=RTPROT_FYKE):
                dst, plen, gw = r.get_attr("RTA_DST"), r["dst_len"], r.get_attr("RTA_GATEWAY")
                if dst is not None:
                    out[f"{dst}/{plen}"] = gw or ""
            return out

    def sync(self, peers: list[PeerNode]) -> tuple[int, int]:
        """Make the fyke routes exactly the peers'; returns (added or changed, removed)."""
        want = {p.pod_cidr: p.ip for p in peers}
        have = self.installed()
        added = removed = 0
        with IPRoute() as ipr:
            for cidr in have.keys() - want.keys():
                ipr.route("del", dst=cidr, proto=RTPROT_FYKE)
                removed += 1
            for cidr, via in want.items():
                if have.get(cidr) != via:
                    ipr.route("replace", dst=cidr, gateway=via, proto=RTPROT_FYKE)
                    added += 1
        return added, removed


class TunnelNeighbors:
    """Peer MACs in the netdev datapath's tunnel neighbor cache (see the module doc)."""

    def __init__(self, vswitchd_ctl: Path, node_ip: str | None) -> None:
        self.ctl = vswitchd_ctl
        self.node_ip = node_ip
        self.known: dict[str, str] = {}  # peer IP -> MAC set in OVS
        self.unchecked: set[str] = set()  # found in OVS at start, not resolved since
        self.first = True

    def _appctl(self, *args: str) -> None:
        subprocess.run(["ovs-appctl", "-t", str(self.ctl), *args], check=True, capture_output=True)

    def _device(self) -> str | None:
        link = link_with_address(self.node_ip) if self.node_ip else None
        return str(link["ifname"]) if link else None

    @staticmethod
    def _resolve(ip: str, dev: str, timeout: float = 3.0) -> str | None:
        """The peer's MAC, freshly resolved by this namespace's kernel."""
        subprocess.run(["ip", "neigh", "del", ip, "dev", dev], capture_output=True)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                s.sendto(b"", (ip, 9))  # discard port; only the ARP exchange matters
                time.sleep(0.05)
                out = subprocess.run(
                    ["ip", "-j", "neigh", "show", "to", ip, "dev", dev],
                    capture_output=True,
                    text=True,
                ).stdout
                for n in json.loads(out or "[]"):
                    # The entry was deleted above, so any address in it is fresh; it may
                    # be STALE when the peer's own ARP request taught it (both resolving).
                    bad = {"FAILED", "INCOMPLETE"} & set(n.get("state", []))
                    if n.get("lladdr") and not bad:
                        return str(n["lladdr"])
        return None

    def _show(self) -> dict[str, str]:
        """The cache as OVS holds it: peer IP -> MAC."""
        out = subprocess.run(
            ["ovs-appctl", "-t", str(self.ctl), "tnl/neigh/show"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        found = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0][:1].isdigit() and ":" in parts[1]:
                found[parts[0]] = parts[1]
        return found

    def sync(self, peers: list[PeerNode]) -> bool:
        """True when every peer's MAC is set."""
        dev = self._device() if self.node_ip else None
        if dev is None:
            log.warning("no device holds the node IP %s: tunnel neighbors not set", self.node_ip)
            return True
        want = {p.ip for p in peers}
        if self.first:
            # A restarted agent keeps what the cache holds (flushing it would drop traffic
            # to every peer until each is resolved again) and checks each entry once.
            self.known = self._show()
            self.unchecked = set(self.known)
            self.first = False
        if self.known.keys() - want:
            # No per-entry delete exists: flush, then put back at once what stays.
            self._appctl("tnl/neigh/flush")
            self.known = {ip: held for ip, held in self.known.items() if ip in want}
            for ip, held in self.known.items():
                self._appctl("tnl/neigh/set", dev, ip, held)
        complete = True
        for ip in sorted(want - self.known.keys()):
            mac = self._resolve(ip, dev)
            if mac is None:
                log.warning("peer %s did not answer ARP; trying again", ip)
                complete = False
                continue
            self._appctl("tnl/neigh/set", dev, ip, mac)
            self.known[ip] = mac
        for ip in sorted(self.unchecked & want):
            fresh = self._resolve(ip, dev)
            if fresh is not None and fresh != self.known.get(ip):
                log.info("peer %s is now at %s", ip, fresh)
                self._appctl("tnl/neigh/set", dev, ip, fresh)
                self.known[ip] = fresh
            self.unchecked.discard(ip)
        return complete


def enable_forwarding() -> None:
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")


class NodeRoutes:
    """`await routes.start()`; `routes.peers` is the current peer set. `changed` is awaited
    after every change of it (the agent reconciles its flows there)."""

    def __init__(
        self,
        client: AsyncClient,
        node: str,
        encap: str,
        changed: Callable[[], Awaitable[None]],
        *,
        neighbors: TunnelNeighbors | None = None,
    ) -> None:
        self.node = node
        self.neighbors = neighbors
        self.encap = encap
        self.changed = changed
        self.reflector = Reflector(client, resources.NODE, self._on_change, backoff=2.0)
        self.kernel = KernelRoutes()
        self.peers: list[PeerNode] = []
        self._task: asyncio.Task[None] | None = None
        self._retry_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.encap == "none":
            await asyncio.to_thread(enable_forwarding)
        self._task = asyncio.create_task(self.reflector.run())
        await asyncio.wait_for(self.reflector.synced.wait(), 60)
        await self._apply()

    async def stop(self) -> None:
        for task in (self._task, self._retry_task):
            if task is not None:
                task.cancel()

    def _retry(self, delay: float = 2.0) -> None:
        async def later() -> None:
            await asyncio.sleep(delay)
            await self._apply()

        if self._retry_task is None or self._retry_task.done():
            self._retry_task = asyncio.create_task(later())

    async def _on_change(self, _: Change) -> None:
        if self.reflector.synced.is_set():
            await self._apply()

    async def _apply(self) -> None:
        peers = peers_of(list(self.reflector.cache.values()), self.node)
        # Routes are synced even when the peer set looks unchanged: the first call cleans
        # up routes of nodes that left while the agent was down.
        if self.encap == "none":
            added, removed = await asyncio.to_thread(self.kernel.sync, peers)
            if added or removed:
                log.info("routes: %d added or changed, %d removed", added, removed)
        if self.neighbors is not None and not await asyncio.to_thread(self.neighbors.sync, peers):
            self._retry()
        if peers != self.peers:
            log.info("peer nodes: %s", ", ".join(f"{p.name}={p.ip}" for p in peers) or "none")
            self.peers = peers
            await self.changed()
