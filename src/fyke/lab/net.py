"""The lab's host side of the network: a management bridge on the host with one veth per
node namespace, so agents and kubelets in node namespaces reach the lab API server."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass

BRIDGE = "fyke-lab0"
MGMT_NET = "172.31.250"  # /24; the host is .1, node-N is .(10+N)
HOST_IP = f"{MGMT_NET}.1"


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeNet:
    name: str  # node-1
    netns: str  # fyke-node-1
    mgmt_ip: str
    host_veth: str  # fyke-m1 (host side)


def node_net(index: int) -> NodeNet:
    return NodeNet(
        name=f"node-{index}",
        netns=f"fyke-node-{index}",
        mgmt_ip=f"{MGMT_NET}.{10 + index}",
        host_veth=f"fyke-m{index}",
    )


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True)


def ensure_bridge() -> None:
    if sh("ip", "link", "show", BRIDGE, check=False).returncode != 0:
        sh("ip", "link", "add", BRIDGE, "type", "bridge")
        sh("ip", "addr", "add", f"{HOST_IP}/24", "dev", BRIDGE)
    sh("ip", "link", "set", BRIDGE, "up")


def add_node(n: NodeNet) -> None:
    if sh("ip", "netns", "pids", n.netns, check=False).returncode != 0:
        sh("ip", "netns", "add", n.netns)
    sh("ip", "-n", n.netns, "link", "set", "lo", "up")
    if sh("ip", "link", "show", n.host_veth, check=False).returncode != 0:
        sh(
            "ip",
            "link",
            "add",
            n.host_veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            n.netns,
        )
        sh("ip", "link", "set", n.host_veth, "master", BRIDGE, "up")
        sh("ip", "-n", n.netns, "addr", "add", f"{n.mgmt_ip}/24", "dev", "eth0")
        sh("ip", "-n", n.netns, "link", "set", "eth0", "up")


def remove_node(n: NodeNet) -> None:
    sh("ip", "link", "del", n.host_veth, check=False)
    sh("ip", "netns", "del", n.netns, check=False)


def remove_bridge() -> None:
    sh("ip", "link", "del", BRIDGE, check=False)


def lab_namespaces() -> list[str]:
    out = sh("ip", "netns", "list", check=False).stdout.split("\n")
    return [line.split()[0] for line in out if line.startswith("fyke-")]


def kill_netns_processes(netns: str) -> None:
    """Stop, by PID, every process still inside a lab namespace before it is deleted."""
    out = sh("ip", "netns", "pids", netns, check=False).stdout.split()
    for pid in (int(p) for p in out if p.isdigit()):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
