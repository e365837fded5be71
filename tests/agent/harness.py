"""Real network namespaces and an in-process agent CNI server for tests.

Namespaces are named `fyke-t<pid>-<n>`; they and every pod veth host end created during a test
are removed in teardown, also when the test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fyke.agent.cniserver import CniServer
from fyke.agent.ipam import Ipam
from fyke.agent.plumbing import VethPlumbing, is_host_veth_name
from fyke.agent.ports import InMemoryPortAttacher, PortAttacher

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)")
POD_CIDR = "10.77.0.0/24"
K8S_ARGS = (
    "IgnoreUnknown=1;K8S_POD_NAMESPACE={ns};K8S_POD_NAME={name};"
    "K8S_POD_INFRA_CONTAINER_ID={cid};K8S_POD_UID=uid-{name}"
)


def sh(cmd: str, check: bool = True) -> str:
    out = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30)
    if check and out.returncode != 0:
        raise AssertionError(f"{cmd}: {out.stderr}")
    return out.stdout


def ip_json(cmd: str) -> Any:
    return json.loads(sh(f"ip -j {cmd}") or "[]")


def host_veths() -> set[str]:
    return {link["ifname"] for link in ip_json("link show") if is_host_veth_name(link["ifname"])}


@dataclass
class Netns:
    """Factory of pod network namespaces; `make()` returns the path CNI_NETNS carries."""

    prefix: str = field(default_factory=lambda: f"fyke-t{os.getpid()}-")
    names: list[str] = field(default_factory=list)
    _counter: Iterator[int] = field(default_factory=itertools.count)

    def make(self) -> str:
        name = f"{self.prefix}{next(self._counter)}"
        sh(f"ip netns add {name}")
        self.names.append(name)
        return f"/run/netns/{name}"

    @staticmethod
    def name_of(path: str) -> str:
        return Path(path).name

    def exec(self, path: str, cmd: str, check: bool = True) -> str:
        return sh(f"ip netns exec {self.name_of(path)} {cmd}", check=check)

    def cleanup(self) -> None:
        for name in self.names:
            sh(f"ip netns del {name}", check=False)
        self.names.clear()


@pytest.fixture
def netns() -> Iterator[Netns]:
    before = host_veths()
    factory = Netns()
    try:
        yield factory
    finally:
        factory.cleanup()
        for name in host_veths() - before:
            sh(f"ip link del {name}", check=False)


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    """A short directory: unix socket paths are limited to 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="fyke-cni-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def config(**extra: Any) -> dict[str, Any]:
    return {"cniVersion": "1.1.0", "name": "fyke-pods", "type": "fyke-cni", **extra}


@dataclass
class Agent:
    server: CniServer
    ipam: Ipam
    attacher: PortAttacher
    ports: InMemoryPortAttacher

    @property
    def socket(self) -> str:
        return str(self.server.socket_path)

    async def call(
        self,
        command: str,
        cid: str = "",
        netns: str = "",
        ifname: str = "eth0",
        cfg: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One request over the real socket, as the shim sends it; returns the reply."""
        msg = {
            "command": command,
            "containerID": cid,
            "netns": netns,
            "ifname": ifname,
            "args": K8S_ARGS.format(ns="x", name=f"pod-{cid}", cid=cid),
            "path": "/opt/cni/bin",
            "config": cfg or config(),
        }
        reader, writer = await asyncio.open_unix_connection(self.socket)
        writer.write(json.dumps(msg).encode())
        writer.write_eof()
        data = await reader.read()
        writer.close()
        await writer.wait_closed()
        reply: dict[str, Any] = json.loads(data)
        return reply


@contextlib.asynccontextmanager
async def running_agent(
    state_dir: Path,
    attacher: PortAttacher | None = None,
    pod_cidr: str = POD_CIDR,
) -> AsyncIterator[Agent]:
    ports = InMemoryPortAttacher()
    ipam = Ipam(pod_cidr, state_dir / "state")
    plumbing = VethPlumbing(max_workers=8)
    server = CniServer(
        ipam=ipam,
        plumbing=plumbing,
        attacher=attacher or ports,
        socket_path=state_dir / "run" / "cni.sock",
    )
    try:
        async with server:
            yield Agent(server=server, ipam=ipam, attacher=attacher or ports, ports=ports)
    finally:
        plumbing.close()
