"""The lab's networks.

Management: a bridge on the host (fyke-lab0) with one veth per node namespace (eth0 there),
so agents and kubelets in node namespaces reach the lab API server. Nothing else uses it.

Underlay: a fabric namespace (fyke-fabric) holding a Linux bridge, with one veth per node
(eth1 in the node namespace). Node IPs (the Nodes' InternalIP) live on it, and pod traffic
between nodes crosses it: tunnelled (Geneve/VXLAN) or routed (noEncap). The host's own
network is never touched. With a tunnel the node IP sits on br-phy, an OVS bridge of the
node's userspace datapath holding eth1, as the userspace tunnel implementation requires
(../LAB-NOTES); in noEncap mode it sits on eth1 itself and the node's kernel routes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass

BRIDGE = "fyke-lab0"
MGMT_NET = "172.31.250"  # /24; the host is .1, node-N is .(10+N)
HOST_IP = f"{MGMT_NET}.1"
FABRIC_NETNS = "fyke-fabric"
FABRIC_BRIDGE = "fyke-fabric0"  # inside FABRIC_NETNS
UNDERLAY_NET = "192.168.77"  # /24; node-N is .(10+N)
UNDERLAY_PREFIX = 24
UNDERLAY_DEV = "eth1"  # in each node namespace
UNDERLAY_BRIDGE = "br-phy"  # with a tunnel: the OVS bridge holding eth1 and the node IP


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeNet:
    name: str  # node-1
    netns: str  # fyke-node-1
    mgmt_ip: str
    host_veth: str  # fyke-m1 (host side)
    underlay_ip: str
    fabric_veth: str  # fyke-u1 (in the fabric namespace)


def node_net(index: int) -> NodeNet:
    if not 1 <= index <= 200:
        raise ValueError(f"lab node index {index} is not in 1..200")
    return NodeNet(
        name=f"node-{index}",
        netns=f"fyke-node-{index}",
        mgmt_ip=f"{MGMT_NET}.{10 + index}",
        host_veth=f"fyke-m{index}",
        underlay_ip=f"{UNDERLAY_NET}.{10 + index}",
        fabric_veth=f"fyke-u{index}",
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


def ensure_fabric() -> None:
    if sh("ip", "netns", "pids", FABRIC_NETNS, check=False).returncode != 0:
        sh("ip", "netns", "add", FABRIC_NETNS)
    sh("ip", "-n", FABRIC_NETNS, "link", "set", "lo", "up")
    if sh("ip", "-n", FABRIC_NETNS, "link", "show", FABRIC_BRIDGE, check=False).returncode != 0:
        sh("ip", "-n", FABRIC_NETNS, "link", "add", FABRIC_BRIDGE, "type", "bridge")
    sh("ip", "-n", FABRIC_NETNS, "link", "set", FABRIC_BRIDGE, "up")


def add_underlay(n: NodeNet) -> None:
    """The node's eth1 on the fabric bridge (no address yet: see underlay_address)."""
    if sh("ip", "-n", FABRIC_NETNS, "link", "show", n.fabric_veth, check=False).returncode == 0:
        return
    sh(
        "ip",
        "-n",
        FABRIC_NETNS,
        "link",
        "add",
        n.fabric_veth,
        "type",
        "veth",
        "peer",
        "name",
        UNDERLAY_DEV,
        "netns",
        n.netns,
    )
    sh("ip", "-n", FABRIC_NETNS, "link", "set", n.fabric_veth, "master", FABRIC_BRIDGE, "up")
    sh("ip", "-n", n.netns, "link", "set", UNDERLAY_DEV, "up")


def underlay_address(n: NodeNet, encap: str, ovs_db: str) -> None:
    """Give the node its underlay IP: on br-phy (an OVS bridge holding eth1) with a
    tunnel, on eth1 itself in noEncap mode."""
    cidr = f"{n.underlay_ip}/{UNDERLAY_PREFIX}"
    if encap == "none":
        sh("ip", "-n", n.netns, "addr", "replace", cidr, "dev", UNDERLAY_DEV)
        return
    sh(
        "ip",
        "netns",
        "exec",
        n.netns,
        "ovs-vsctl",
        f"--db={ovs_db}",
        "--may-exist",
        "add-br",
        UNDERLAY_BRIDGE,
        "--",
        "set",
        "Bridge",
        UNDERLAY_BRIDGE,
        "datapath_type=netdev",
        "--",
        "--may-exist",
        "add-port",
        UNDERLAY_BRIDGE,
        UNDERLAY_DEV,
    )
    # eth1 is now an OVS port: the node's kernel must not answer ARP on it too.
    sh("ip", "-n", n.netns, "link", "set", UNDERLAY_DEV, "arp", "off")
    sh(
        "ip",
        "netns",
        "exec",
        n.netns,
        "sysctl",
        "-q",
        "-w",
        f"net.ipv6.conf.{UNDERLAY_DEV}.disable_ipv6=1",
    )
    for _ in range(50):
        if sh("ip", "-n", n.netns, "link", "show", UNDERLAY_BRIDGE, check=False).returncode == 0:
            break
        time.sleep(0.1)
    sh("ip", "-n", n.netns, "addr", "replace", cidr, "dev", UNDERLAY_BRIDGE)
    sh("ip", "-n", n.netns, "link", "set", UNDERLAY_BRIDGE, "up")


def remove_node(n: NodeNet) -> None:
    sh("ip", "link", "del", n.host_veth, check=False)
    sh("ip", "-n", FABRIC_NETNS, "link", "del", n.fabric_veth, check=False)
    sh("ip", "netns", "del", n.netns, check=False)


def remove_fabric() -> None:
    kill_netns_processes(FABRIC_NETNS)
    sh("ip", "netns", "del", FABRIC_NETNS, check=False)


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
