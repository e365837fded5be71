"""A real node: OVS (userspace datapath) in namespace fyke-t-node, two pods on br-int.

Everything is named fyke-t-*; the namespaces, the OVS directory and both daemons (stopped
by PID) are removed in teardown, also when a test fails, and leftovers of a crashed run are
removed before setup.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from fyke.datapath.pod import Gateway, PodPort, pod_connectivity
from fyke.ovs import ovsdb
from fyke.ovs.daemons import OvsDaemons
from fyke.ovs.openflow import OFConnection
from fyke.ovs.reconcile import reconcile

T = TypeVar("T")

NODE_NS = "fyke-t-node"
OVS_DIR = Path("/tmp/fyke-t-node")
BRIDGE = "br-int"
GW_OFPORT = 2
GW_IP = "10.10.0.1"
PODS = {
    # pod name -> (namespace, host veth, ip, mac, ofport_request)
    "a": ("fyke-t-pod-a", "fyke-t-a", "10.10.0.2", "02:00:0a:0a:00:02", 3),
    "b": ("fyke-t-pod-b", "fyke-t-b", "10.10.0.3", "02:00:0a:0a:00:03", None),
}


def sh(cmd: str, check: bool = True, timeout: float = 15) -> str:
    out = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=timeout)
    if check and out.returncode != 0:
        raise AssertionError(f"{cmd}: exit {out.returncode}: {out.stderr.strip()}")
    return out.stdout


def _remove_leftovers() -> None:
    # A crashed run may have left daemons: stop them by the PIDs in their own pidfiles,
    # and only if their command line names our directory.
    for pidfile in OVS_DIR.glob("*.pid"):
        with contextlib.suppress(ValueError, OSError):
            pid = int(pidfile.read_text().strip())
            if str(OVS_DIR) in Path(f"/proc/{pid}/cmdline").read_text():
                os.kill(pid, signal.SIGKILL)
    for ns in [NODE_NS, *(p[0] for p in PODS.values())]:
        sh(f"ip netns del {ns}", check=False)
    shutil.rmtree(OVS_DIR, ignore_errors=True)


@dataclass
class Node:
    loop: asyncio.AbstractEventLoop
    daemons: OvsDaemons
    db: ovsdb.Ovsdb
    conn: OFConnection
    gateway: Gateway
    pods: dict[str, PodPort]
    round: int = 1

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def desired(self, round: int, extra: list[PodPort] | None = None) -> Any:
        return pod_connectivity(self.gateway, [*self.pods.values(), *(extra or [])], round=round)

    def ofctl(self, *args: str) -> str:
        env = " ".join(
            f"{k}={v}" for k, v in self.daemons.paths.env().items() if k.startswith("OVS_")
        )
        return sh(f"{env} ovs-ofctl -O OpenFlow15 {' '.join(args)}")

    def trace(self, flow: str) -> str:
        return self.run(self.daemons.appctl("ofproto/trace", BRIDGE, flow))

    def pod_ns(self, pod: str) -> str:
        return PODS[pod][0]


def _setup_pod(name: str) -> None:
    ns, host, ip, mac, _ = PODS[name]
    sh(f"ip netns add {ns}")
    sh(f"ip -n {NODE_NS} link add {host} type veth peer name eth0 netns {ns}")
    # The host end is only an OVS port: keep the node kernel off it (LAB-NOTES).
    sh(f"ip netns exec {NODE_NS} sysctl -qw net.ipv6.conf.{host}.disable_ipv6=1")
    sh(f"ip -n {NODE_NS} link set {host} arp off up")
    sh(f"ip netns exec {ns} sysctl -qw net.ipv6.conf.all.disable_ipv6=1")
    sh(f"ip -n {ns} link set lo up")
    sh(f"ip -n {ns} link set eth0 address {mac} up")
    sh(f"ip -n {ns} addr add {ip}/24 dev eth0")
    sh(f"ip -n {ns} route add default via {GW_IP}")
    # TCP through the userspace datapath needs checksums done in software (LAB-NOTES).
    sh(f"ip netns exec {ns} ethtool -K eth0 tx off")


@pytest.fixture(scope="module")
def node() -> Iterator[Node]:
    if os.geteuid() != 0 or shutil.which("ovs-vswitchd") is None:
        pytest.skip("needs root and Open vSwitch")
    _remove_leftovers()
    loop = asyncio.new_event_loop()
    daemons: OvsDaemons | None = None
    db: ovsdb.Ovsdb | None = None
    conn: OFConnection | None = None
    try:
        sh(f"ip netns add {NODE_NS}")
        sh(f"ip -n {NODE_NS} link set lo up")
        daemons = loop.run_until_complete(OvsDaemons.start(dir=OVS_DIR, netns=NODE_NS))
        db = loop.run_until_complete(ovsdb.Ovsdb.connect(daemons.paths.db_remote))
        loop.run_until_complete(
            db.transact(
                ovsdb.AddBridge(name=BRIDGE, datapath_type="netdev"),
                ovsdb.gateway_port(BRIDGE, GW_OFPORT),
            )
        )
        gw_ofport = loop.run_until_complete(db.get_ofport(ovsdb.GATEWAY_PORT))
        sh(f"ip -n {NODE_NS} addr add {GW_IP}/24 dev {ovsdb.GATEWAY_PORT}")
        sh(f"ip -n {NODE_NS} link set {ovsdb.GATEWAY_PORT} up")
        gw_mac = sh(f"ip netns exec {NODE_NS} cat /sys/class/net/{ovsdb.GATEWAY_PORT}/address")
        gateway = Gateway(ofport=gw_ofport, ip=GW_IP, mac=gw_mac.strip())

        pods: dict[str, PodPort] = {}
        for name, (_ns, host, ip, mac, ofport_request) in PODS.items():
            _setup_pod(name)
            cmd = ovsdb.pod_port(
                BRIDGE,
                host,
                pod_namespace="fyke-test",
                pod_name=name,
                container_id=f"c-{name}",
                ip=ip,
                mac=mac,
                ofport_request=ofport_request,
            )
            loop.run_until_complete(db.transact(cmd))
            ofport = loop.run_until_complete(db.get_ofport(host))
            pods[name] = PodPort(ofport=ofport, name=host, ip=ip, mac=mac)

        conn = loop.run_until_complete(OFConnection.connect(daemons.paths.mgmt(BRIDGE)))
        n = Node(loop=loop, daemons=daemons, db=db, conn=conn, gateway=gateway, pods=pods)
        n.run(reconcile(conn, n.desired(round=n.round)))
        yield n
    finally:
        if conn is not None:
            loop.run_until_complete(conn.close())
        if db is not None:
            loop.run_until_complete(db.close())
        if daemons is not None:
            loop.run_until_complete(daemons.stop())
        loop.close()
        for ns in [NODE_NS, *(p[0] for p in PODS.values())]:
            sh(f"ip netns del {ns}", check=False)
        shutil.rmtree(OVS_DIR, ignore_errors=True)
