"""Pod veth plumbing with pyroute2: create, check and delete the veth pair of an attachment.

The pod end is created directly inside the pod's network namespace under its final name (the
veth peer carries IFLA_NET_NS_FD), so there is no window with a stray `eth0` in the node
namespace. Work inside the pod namespace uses sockets opened there: an executor thread enters
the namespace with setns(2) (which moves only that thread), opens its netlink and ioctl sockets
and returns at once; sockets stay in the namespace they were opened in.

The host end is muted (no ARP, no IPv6) because with the userspace datapath it stays a live
kernel device in the node namespace; the pod end gets checksum offload off (`ethtool -K eth0 tx
off`), without which TCP through the userspace datapath fails.

All pyroute2 calls are blocking; they run in a bounded executor.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import ctypes
import errno
import fcntl
import hashlib
import os
import re
import socket
import struct
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface
from typing import Any, TypeVar

from pyroute2 import IPRoute  # type: ignore[import-untyped]
from pyroute2.netlink.exceptions import (  # type: ignore[import-untyped]
    NetlinkDumpInterrupted,
    NetlinkError,
)

HOST_PREFIX = "fyke-"
_HOST_VETH = re.compile(r"^fyke-[0-9a-f]{10}$")
_CLONE_NEWNET = 0x40000000
_SIOCETHTOOL = 0x8946
_ETHTOOL_STXCSUM = 0x17
_DUMP_ATTEMPTS = 20
_IFF_UP = 0x1
_IFF_NOARP = 0x80

T = TypeVar("T")


class PlumbingError(Exception):
    pass


class NetnsGone(PlumbingError):
    pass


def host_ifname(container_id: str, ifname: str) -> str:
    """`fyke-` + 10 hex digits of a hash of the attachment: 15 characters, the kernel's limit."""
    digest = hashlib.sha256(f"{container_id}/{ifname}".encode()).hexdigest()
    return f"{HOST_PREFIX}{digest[:10]}"


def is_host_veth_name(name: str) -> bool:
    return bool(_HOST_VETH.match(name))


@dataclass(frozen=True, slots=True, kw_only=True)
class PodInterface:
    host_ifname: str
    host_mac: str
    pod_ifname: str
    pod_mac: str
    mtu: int


_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextlib.contextmanager
def _thread_in_netns(netns: str) -> Iterator[None]:
    """Run the block with the calling thread in `netns` (a path); sockets opened inside stay
    there. If the thread cannot return, it must not serve other work: that is fatal."""
    try:
        target = os.open(netns, os.O_RDONLY)
    except FileNotFoundError as e:
        raise NetnsGone(f"network namespace {netns} does not exist") from e
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            try:
                _setns(own)
            except OSError as e:  # pragma: no cover - the kernel refused to go back
                # A pool thread left in a pod's namespace would plumb the next pod wrongly.
                os.write(2, f"fyke: executor thread stuck in {netns}: {e}\n".encode())
                os._exit(70)
    finally:
        os.close(own)
        os.close(target)


def _open_in_netns(netns: str) -> tuple[IPRoute, socket.socket]:
    with _thread_in_netns(netns):
        ipr = IPRoute()
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        except BaseException:
            ipr.close()
            raise
    return ipr, sock


def _tx_checksum_off(sock: socket.socket, ifname: str) -> None:
    """`ethtool -K IFNAME tx off` (ETHTOOL_STXCSUM; the kernel drops TSO/GSO that need it)."""
    value = array.array("I", [_ETHTOOL_STXCSUM, 0])
    ifreq = struct.pack("16sP", ifname.encode(), value.buffer_info()[0])
    fcntl.ioctl(sock.fileno(), _SIOCETHTOOL, ifreq)


def _dump(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> list[Any]:
    """A netlink dump, repeated when concurrent changes interrupt it (NLM_F_DUMP_INTR)."""
    for _ in range(_DUMP_ATTEMPTS - 1):
        try:
            return list(fn(*args, **kwargs))
        except NetlinkDumpInterrupted:
            continue
    return list(fn(*args, **kwargs))


def _link(ipr: IPRoute, ifname: str) -> Any | None:
    """One link by name (RTM_GETLINK for that name, not a dump); None if absent."""
    try:
        links = ipr.link("get", ifname=ifname)
    except NetlinkError as e:
        if e.code == errno.ENODEV:
            return None
        raise
    return links[0] if links else None


def _index(ipr: IPRoute, ifname: str) -> int:
    link = _link(ipr, ifname)
    if link is None:
        raise PlumbingError(f"interface {ifname} vanished")
    return int(link["index"])


def _mute_host_end(ifname: str) -> None:
    with open(f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6", "w") as f:
        f.write("1")


class VethPlumbing:
    """Veth pairs for pods; every method is safe to run concurrently for different pods."""

    def __init__(self, *, max_workers: int = 8) -> None:
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="plumb")

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def setup(
        self,
        *,
        netns: str,
        host_ifname: str,
        pod_ifname: str,
        mtu: int,
        address: IPv4Interface,
        gateway: IPv4Address,
    ) -> PodInterface:
        """Create the pair, configure both ends; on failure the pair is gone again."""
        return await self._run(self._setup, netns, host_ifname, pod_ifname, mtu, address, gateway)

    async def teardown(self, host_ifname: str) -> bool:
        """Delete the pair by its host end (which also removes the pod end); False if absent."""
        return await self._run(self._teardown, host_ifname)

    async def check(
        self,
        *,
        netns: str,
        host_ifname: str,
        pod_ifname: str,
        address: IPv4Interface,
        gateway: IPv4Address,
    ) -> None:
        """Raise PlumbingError saying what is missing or wrong."""
        await self._run(self._check, netns, host_ifname, pod_ifname, address, gateway)

    async def host_veths(self) -> list[str]:
        """Names of fyke's pod veth host ends in the node namespace."""
        return await self._run(self._host_veths)

    def _setup(
        self,
        netns: str,
        host: str,
        pod: str,
        mtu: int,
        address: IPv4Interface,
        gateway: IPv4Address,
    ) -> PodInterface:
        pod_ipr, sock = _open_in_netns(netns)
        created = False
        try:
            with IPRoute() as ipr:
                if _link(pod_ipr, pod) is not None:
                    raise PlumbingError(f"{netns} already has an interface {pod}")
                ns_fd = os.open(netns, os.O_RDONLY)
                try:
                    ipr.link(
                        "add",
                        ifname=host,
                        kind="veth",
                        mtu=mtu,
                        peer={"ifname": pod, "net_ns_fd": ns_fd, "mtu": mtu},
                    )
                    created = True
                finally:
                    os.close(ns_fd)
                host_idx = _index(ipr, host)
                _mute_host_end(host)
                ipr.link("set", index=host_idx, flags=_IFF_NOARP, mask=_IFF_NOARP)
                ipr.link("set", index=host_idx, state="up")
                host_mac = ipr.link("get", index=host_idx)[0].get_attr("IFLA_ADDRESS")

            pod_idx = _index(pod_ipr, pod)
            _tx_checksum_off(sock, pod)
            pod_ipr.addr(
                "add", index=pod_idx, address=str(address.ip), prefixlen=address.network.prefixlen
            )
            pod_ipr.link("set", index=pod_idx, state="up")
            lo = _link(pod_ipr, "lo")
            if lo is not None:
                pod_ipr.link("set", index=lo["index"], state="up")
            pod_ipr.route("add", dst="0.0.0.0/0", gateway=str(gateway), oif=pod_idx)
            pod_mac = pod_ipr.link("get", index=pod_idx)[0].get_attr("IFLA_ADDRESS")
            return PodInterface(
                host_ifname=host, host_mac=host_mac, pod_ifname=pod, pod_mac=pod_mac, mtu=mtu
            )
        except BaseException:
            if created:
                self._teardown(host)
            raise
        finally:
            sock.close()
            pod_ipr.close()

    def _teardown(self, host: str) -> bool:
        with IPRoute() as ipr:
            try:
                ipr.link("del", ifname=host)
            except NetlinkError as e:
                if e.code == errno.ENODEV:
                    return False
                raise
            return True

    def _check(
        self,
        netns: str,
        host: str,
        pod: str,
        address: IPv4Interface,
        gateway: IPv4Address,
    ) -> None:
        with IPRoute() as ipr:
            if _link(ipr, host) is None:
                raise PlumbingError(f"host interface {host} does not exist")
        pod_ipr, sock = _open_in_netns(netns)
        sock.close()
        with pod_ipr:
            link = _link(pod_ipr, pod)
            if link is None:
                raise PlumbingError(f"interface {pod} does not exist in {netns}")
            idx = link["index"]
            if not link["flags"] & _IFF_UP:
                raise PlumbingError(f"interface {pod} in {netns} is down")
            have = {
                (a.get_attr("IFA_ADDRESS"), a["prefixlen"])
                for a in _dump(pod_ipr.get_addr, index=idx)
            }
            if (str(address.ip), address.network.prefixlen) not in have:
                raise PlumbingError(f"interface {pod} in {netns} does not have {address}")
            defaults = [
                r
                for r in _dump(pod_ipr.get_routes, family=socket.AF_INET, table=254)
                if r["dst_len"] == 0 and r.get_attr("RTA_OIF") == idx
            ]
            if not any(r.get_attr("RTA_GATEWAY") == str(gateway) for r in defaults):
                raise PlumbingError(f"{netns} has no default route via {gateway} on {pod}")

    def _host_veths(self) -> list[str]:
        with IPRoute() as ipr:
            names = [link.get_attr("IFLA_IFNAME") for link in _dump(ipr.get_links)]
        return sorted(n for n in names if n and is_host_veth_name(n))
