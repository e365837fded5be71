"""IPv4 address management for the pods of one node, from the node's podCIDR.

Allocations are keyed by (container id, ifname) and persisted in `STATE_DIR/ipam.json`, written
atomically (temporary file, fsync, rename, fsync of the directory), so a restarted agent sees
every allocation. The network address, the gateway (first host, for `fyke-gw0`) and the
broadcast address are never handed out. Addresses are handed out round-robin after the last
allocation, so a released address is not reused at once.

Thread-safe: the agent calls it from its executor.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import Any

STATE_FILE = "ipam.json"
FORMAT_VERSION = 1


class IpamError(Exception):
    pass


class IpamExhausted(IpamError):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Allocation:
    container_id: str
    ifname: str
    ip: IPv4Address
    pod: str = ""  # "namespace/name", for people reading the state file

    def to_json(self) -> dict[str, str]:
        return {**asdict(self), "ip": str(self.ip)}


class Ipam:
    def __init__(self, pod_cidr: IPv4Network | str, state_dir: Path | str) -> None:
        self.pod_cidr = IPv4Network(pod_cidr)
        if self.pod_cidr.num_addresses < 4:
            raise IpamError(
                f"podCIDR {self.pod_cidr} is too small: it needs a network, gateway and "
                "broadcast address and at least one pod address"
            )
        self.gateway = self.pod_cidr.network_address + 1
        self._reserved = {
            self.pod_cidr.network_address,
            self.gateway,
            self.pod_cidr.broadcast_address,
        }
        self.path = Path(state_dir) / STATE_FILE
        self._lock = threading.Lock()
        self._by_key: dict[tuple[str, str], Allocation] = {}
        self._by_ip: dict[IPv4Address, Allocation] = {}
        self._last = self.gateway
        self._load()

    @property
    def capacity(self) -> int:
        return self.pod_cidr.num_addresses - len(self._reserved)

    def interface(self, ip: IPv4Address) -> IPv4Interface:
        """The pod's address with the podCIDR's prefix length."""
        return IPv4Interface(f"{ip}/{self.pod_cidr.prefixlen}")

    def allocate(self, container_id: str, ifname: str, pod: str = "") -> IPv4Address:
        """The address of (container_id, ifname); the same one again on a repeated ADD."""
        with self._lock:
            existing = self._by_key.get((container_id, ifname))
            if existing is not None:
                return existing.ip
            ip = self._next_free()
            alloc = Allocation(container_id=container_id, ifname=ifname, ip=ip, pod=pod)
            self._by_key[(container_id, ifname)] = alloc
            self._by_ip[ip] = alloc
            previous_last, self._last = self._last, ip
            try:
                self._save()
            except BaseException:
                del self._by_key[(container_id, ifname)]
                del self._by_ip[ip]
                self._last = previous_last
                raise
            return ip

    def release(self, container_id: str, ifname: str) -> IPv4Address | None:
        """Free the address of (container_id, ifname); None if it had none."""
        with self._lock:
            alloc = self._by_key.pop((container_id, ifname), None)
            if alloc is None:
                return None
            del self._by_ip[alloc.ip]
            try:
                self._save()
            except BaseException:
                self._by_key[(container_id, ifname)] = alloc
                self._by_ip[alloc.ip] = alloc
                raise
            return alloc.ip

    def get(self, container_id: str, ifname: str) -> Allocation | None:
        with self._lock:
            return self._by_key.get((container_id, ifname))

    def allocations(self) -> list[Allocation]:
        with self._lock:
            return sorted(self._by_ip.values(), key=lambda a: a.ip)

    def _candidates(self) -> Iterator[IPv4Address]:
        first = int(self.pod_cidr.network_address)
        size = self.pod_cidr.num_addresses
        start = int(self._last) - first + 1
        for offset in range(size):
            yield IPv4Address(first + (start + offset) % size)

    def _next_free(self) -> IPv4Address:
        for ip in self._candidates():
            if ip not in self._reserved and ip not in self._by_ip:
                return ip
        raise IpamExhausted(
            f"podCIDR {self.pod_cidr} is exhausted ({len(self._by_ip)} addresses in use)"
        )

    def _load(self) -> None:
        try:
            raw = self.path.read_text()
        except FileNotFoundError:
            return
        try:
            state: dict[str, Any] = json.loads(raw)
            cidr = IPv4Network(state["podCIDR"])
            allocs = [
                Allocation(
                    container_id=str(a["container_id"]),
                    ifname=str(a["ifname"]),
                    ip=IPv4Address(a["ip"]),
                    pod=str(a.get("pod", "")),
                )
                for a in state["allocations"]
            ]
            last = IPv4Address(state.get("last", str(self.gateway)))
        except (ValueError, KeyError, TypeError) as e:
            raise IpamError(f"{self.path}: unreadable IPAM state: {e}") from e
        if cidr != self.pod_cidr:
            raise IpamError(
                f"{self.path}: holds allocations from podCIDR {cidr}, but this node's podCIDR "
                f"is {self.pod_cidr}; delete the pods of the old podCIDR and the file"
            )
        for a in allocs:
            if a.ip not in self.pod_cidr or a.ip in self._reserved or a.ip in self._by_ip:
                raise IpamError(f"{self.path}: invalid allocation {a.ip} for {a.container_id}")
            self._by_key[(a.container_id, a.ifname)] = a
            self._by_ip[a.ip] = a
        self._last = last if last in self.pod_cidr else self.gateway

    def _save(self) -> None:
        state = {
            "version": FORMAT_VERSION,
            "podCIDR": str(self.pod_cidr),
            "last": str(self._last),
            "allocations": [a.to_json() for a in sorted(self._by_ip.values(), key=lambda a: a.ip)],
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with open(tmp, "w") as f:
            json.dump(state, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
