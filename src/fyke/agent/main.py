"""fyke-agent: the node agent. Today: the node's OVS bridge, gateway and tunnel port, the
base pipeline (pod connectivity with SpoofGuard and conntrack) reconciled by cookie, the
routes or tunnel flows to other nodes' pods, policy flows, and the CNI server.

Usage: fyke-agent --node NAME --kubeconfig K --state-dir D [--cni-socket S]
                  [--ovs-dir D] [--bridge br-int] [--datapath-type netdev|system]
                  [--encap geneve|vxlan|none]
                  [--controller URL --controller-token-file F --controller-ca F]

Without --controller the agent compiles the cluster's policies itself.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from os_ken.ofproto import ofproto_v1_5 as ofp  # type: ignore[import-untyped]

from fyke.agent.audit import AuditLog
from fyke.agent.cniserver import CniServer
from fyke.agent.ipam import Ipam
from fyke.agent.noderoutes import NodeRoutes, TunnelNeighbors, internal_ip, link_with_address
from fyke.agent.ovsport import OvsPortAttacher
from fyke.agent.plumbing import VethPlumbing
from fyke.agent.policies import ControllerSource, LocalSource, PolicyView
from fyke.datapath.flow import Flow
from fyke.datapath.pod import Gateway, PodPort, pod_connectivity
from fyke.datapath.policy import PACKET_IN_METER
from fyke.datapath.tunnel import OVERHEAD, tunnel_flows
from fyke.kube import resources
from fyke.kube.client import async_client
from fyke.ovs.daemons import OvsPaths
from fyke.ovs.openflow import OFConnection, OpenFlowError
from fyke.ovs.ovsdb import (
    GATEWAY_PORT,
    TUNNEL_PORT,
    AddBridge,
    DelPort,
    Ovsdb,
    gateway_port,
    tunnel_port,
)
from fyke.ovs.reconcile import FlowSync
from fyke.ovs.reject import Rejector
from fyke.ovs.translate import meter_mod
from fyke.util.bulk import gc_paused

log = logging.getLogger("fyke.agent")
TUNNEL_OFPORT = 1
GATEWAY_OFPORT = 2
DEFAULT_UNDERLAY_MTU = 1500
PACKET_IN_RATE = 500  # policy packet-ins per second the switch lets through
SNAPSHOT_WAIT = 10.0  # seconds a first start waits for the controller's span


def _next_round(state: Path) -> int:
    """A counter persisted across restarts: flows of older rounds are stale."""
    path = state / "round"
    current = int(path.read_text()) if path.exists() else 0
    nxt = (current + 1) % 0xFFFF or 1
    path.write_text(str(nxt))
    return nxt


def _sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


class Agent:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.node = args.node
        self.state = Path(args.state_dir)
        self.bridge = args.bridge
        self.round = 0
        self.lock = asyncio.Lock()
        self.ovsdb: Ovsdb | None = None
        self.of: OFConnection | None = None
        self.gateway: Gateway | None = None
        self.view: PolicyView | None = None
        self.source: ControllerSource | LocalSource | None = None
        self.rejector: Rejector | None = None
        self.reject_conn: OFConnection | None = None
        self.encap: str = args.encap
        self.routes: NodeRoutes | None = None
        self.audit: AuditLog | None = None
        self._realized_written: dict[str, list[object]] | None = None
        self._realized_lock = asyncio.Lock()
        self._realized_seq = 0  # the flow sync whose realized.json was written last
        self._syncs = 0
        self._policy_flows: list[Flow] = []  # as last installed
        self._reports: set[asyncio.Task[None]] = set()

    async def _own_node(self) -> tuple[ipaddress.IPv4Network, str | None]:
        """This node's podCIDR (waited for) and InternalIP."""
        client = async_client(self.args.kubeconfig, field_manager=f"fyke-agent-{self.node}")
        res: Any = resources.NODE.resource()
        try:
            while True:
                node = (await client.get(res, self.node)).to_dict()
                cidr = node.get("spec", {}).get("podCIDR")
                if cidr:
                    return ipaddress.IPv4Network(cidr), internal_ip(node)
                log.info("waiting for Node %s to get a podCIDR", self.node)
                await asyncio.sleep(1)
        finally:
            await client.close()  # type: ignore[no-untyped-call]

    def _pod_mtu(self, node_ip: str | None) -> int:
        """The MTU of the device holding the node IP, less the encapsulation overhead."""
        mtu = DEFAULT_UNDERLAY_MTU
        if node_ip:
            link = link_with_address(node_ip)
            if link is not None:
                mtu = int(link["mtu"])
            else:
                log.warning("no device holds the node IP %s; assuming MTU %d", node_ip, mtu)
        return mtu - OVERHEAD[self.encap]

    async def sync_flows(self) -> None:
        """Desired flows from the bridge's ports, reconciled in one bundle."""
        assert self.ovsdb is not None and self.of is not None and self.gateway is not None
        policy: list[Flow] = []
        async with self.lock:
            ports = [
                p
                for p in await self.ovsdb.list_ports(self.bridge)
                if p.ofport and p.ofport > 0 and "fyke.io/ip" in p.external_ids
            ]
            pods = [
                PodPort(
                    ofport=p.ofport or 0,
                    name=p.name,
                    ip=p.external_ids["fyke.io/ip"],
                    mac=p.external_ids["fyke.io/mac"],
                )
                for p in ports
            ]
            # Building 100k+ flows at once (no awaits in here): no collector passes over
            # them meanwhile.
            with gc_paused():
                flows = pod_connectivity(self.gateway, pods, round=self.round)
                if self.encap != "none" and self.routes is not None:
                    flows += tunnel_flows(TUNNEL_OFPORT, self.routes.peers, round=self.round)
                if self.view is not None:
                    local = {
                        (
                            p.external_ids.get("fyke.io/pod-namespace", ""),
                            p.external_ids.get("fyke.io/pod-name", ""),
                        ): p.ofport or 0
                        for p in ports
                    }
                    policy = self.view.flows(local, round=self.round)
                    flows += policy
            result = await self.flow_sync.sync(flows)
            if result.changed:
                log.info("flows: %s", result)
            if self.view is not None and policy != self._policy_flows:
                self._policy_flows = policy
                if result.changed and self.args.datapath_type == "netdev":
                    # The userspace datapath keeps forwarding by cached megaflows of the
                    # old rules until its revalidators next run (every 500 ms): a policy
                    # change takes effect now only if the cache goes.
                    await asyncio.to_thread(self._appctl, "revalidator/purge")
            realized = self.view.realized if self.view is not None else None
            self._syncs += 1
            seq = self._syncs
        if realized is not None:
            # In the background: the caller (a CNI ADD, say) need not wait for it.
            task = asyncio.create_task(self._report_realized(realized, seq))
            self._reports.add(task)
            task.add_done_callback(self._reports.discard)

    async def _report_realized(self, realized: dict[str, list[object]], seq: int) -> None:
        """Write realized.json (what `lab apply --wait` reads) and tell the controller: the
        policy objects, by uid and generation, whose flows are now installed and enforced.
        The bundle changed the OpenFlow tables; the datapath's flow cache follows when the
        revalidators have run (the userspace datapath's cache was purged in sync_flows;
        a kernel datapath is waited for here, outside the flow lock, so a CNI ADD never
        waits for the revalidators)."""
        async with self._realized_lock:
            if seq < self._realized_seq or realized == self._realized_written:
                return  # a later sync already wrote (or this one has nothing new)
            if self.args.datapath_type != "netdev":  # netdev: purged in sync_flows
                await asyncio.to_thread(self._appctl, "revalidator/wait")
            tmp = self.state / "realized.json.tmp"
            try:
                tmp.write_text(json.dumps(realized, sort_keys=True))
                tmp.replace(self.state / "realized.json")
            except OSError as e:
                log.warning("realized.json not written: %s", e)
                return
            self._realized_written = realized
            self._realized_seq = seq
            if self.source is not None:
                self.source.report(realized)

    async def run(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        ready_file = self.state / "ready"
        ready_file.unlink(missing_ok=True)
        cidr, node_ip = await self._own_node()
        mtu = await asyncio.to_thread(self._pod_mtu, node_ip)
        ipam = Ipam(cidr, self.state)
        paths = OvsPaths(dir=Path(self.args.ovs_dir))
        self.ovsdb = await Ovsdb.connect(paths.db_remote)
        await self.ovsdb.transact(
            AddBridge(name=self.bridge, datapath_type=self.args.datapath_type),
            gateway_port(self.bridge, GATEWAY_OFPORT),
            (
                DelPort(bridge=self.bridge, name=TUNNEL_PORT)
                if self.encap == "none"
                else tunnel_port(self.bridge, self.encap, TUNNEL_OFPORT)
            ),
        )
        gw_ip = ipam.gateway
        await asyncio.to_thread(self._gateway_device, f"{gw_ip}/{cidr.prefixlen}")
        mac = json.loads(_sh("ip", "-j", "link", "show", GATEWAY_PORT))[0]["address"]
        self.gateway = Gateway(
            ofport=await self.ovsdb.get_ofport(GATEWAY_PORT), ip=str(gw_ip), mac=mac
        )
        self.of = await OFConnection.connect(paths.mgmt(self.bridge))
        self.flow_sync = FlowSync(self.of)
        await self._packet_in_meter()
        # Rejects get their own connection, so a burst of packet-ins never queues in front
        # of the reconciler's bundle replies.
        self.reject_conn = await OFConnection.connect(paths.mgmt(self.bridge))
        self.rejector = await Rejector.start(self.reject_conn)
        self.round = _next_round(self.state)
        api = async_client(self.args.kubeconfig, field_manager=f"fyke-agent-{self.node}")
        neighbors = (
            TunnelNeighbors(paths.vswitchd_ctl, node_ip)
            if self.encap != "none" and self.args.datapath_type == "netdev"
            else None
        )
        self.routes = NodeRoutes(api, self.node, self.encap, self.sync_flows, neighbors=neighbors)
        await self.routes.start()
        self.view = PolicyView(self.state, self.sync_flows)
        self.audit = AuditLog(
            Path(self.args.audit_log or self.state / "networkpolicy.log"), self.view.rule
        )
        self.reject_conn.add_packet_in_handler(self.audit.handle)
        await self._start_policies(api)
        await self.sync_flows()  # the new round replaces every flow of earlier rounds
        self.view.start()
        attacher = OvsPortAttacher(self.ovsdb, self.bridge, self.sync_flows)
        plumbing = VethPlumbing()
        server = CniServer(
            ipam=ipam,
            plumbing=plumbing,
            attacher=attacher,
            socket_path=self.args.cni_socket,
            ready=True,
            mtu=mtu,
        )
        async with server:
            ready_file.write_text(
                json.dumps(
                    {"round": self.round, "podCIDR": str(cidr), "encap": self.encap, "mtu": mtu}
                )
            )
            log.info(
                "agent ready on %s: podCIDR %s, gateway %s, encap %s, pod MTU %d, round %d",
                self.node,
                cidr,
                gw_ip,
                self.encap,
                mtu,
                self.round,
            )
            await asyncio.Event().wait()

    async def _start_policies(self, api: Any) -> None:
        assert self.view is not None
        if not self.args.controller:
            self.source = LocalSource(api, self.node, self.view)
            await self.source.start()
            return
        try:
            token = Path(self.args.controller_token_file).read_text().strip()
        except OSError as e:
            raise SystemExit(f"--controller-token-file: cannot read this node's token: {e}") from e
        self.source = ControllerSource(
            self.args.controller, token, self.args.controller_ca, self.view
        )
        cached = self.view.load_cache()
        await self.source.start()
        if not cached:  # a first start: wait a little for the controller's snapshot
            try:
                await asyncio.wait_for(self.view.synced.wait(), SNAPSHOT_WAIT)
            except TimeoutError:
                log.warning("no span from %s yet; starting without policies", self.args.controller)

    def _appctl(self, command: str) -> None:
        ctl = OvsPaths(dir=Path(self.args.ovs_dir)).vswitchd_ctl
        try:
            r = subprocess.run(
                ["ovs-appctl", "-t", str(ctl), command], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            log.warning("%s failed: %s", command, e)
            return
        if r.returncode != 0:
            log.warning("%s failed: %s", command, r.stderr.strip())

    async def _packet_in_meter(self) -> None:
        """The meter policy packet-ins (Reject, audit log) pass through in the switch."""
        assert self.of is not None
        try:  # kept across agent restarts: flows using it stay valid
            await self.of.checked(
                meter_mod(
                    PACKET_IN_METER,
                    pktps=PACKET_IN_RATE,
                    burst=PACKET_IN_RATE,
                    command=ofp.OFPMC_MODIFY,
                )
            )
        except OpenFlowError:
            await self.of.checked(
                meter_mod(PACKET_IN_METER, pktps=PACKET_IN_RATE, burst=PACKET_IN_RATE)
            )

    def _gateway_device(self, address: str) -> None:
        # The internal port is a tap device of this namespace: give it the gateway address.
        for _ in range(50):
            if (
                subprocess.run(["ip", "link", "show", GATEWAY_PORT], capture_output=True).returncode
                == 0
            ):
                break
            time.sleep(0.1)
        subprocess.run(["ip", "addr", "replace", address, "dev", GATEWAY_PORT], check=True)
        subprocess.run(["ip", "link", "set", GATEWAY_PORT, "up"], check=True)

    async def close(self) -> None:
        if self.routes is not None:
            await self.routes.stop()
        if self.source is not None:
            await self.source.stop()
        if self.view is not None:
            await self.view.stop()
        if self.rejector is not None:
            self.rejector.stop()
        if self.audit is not None:
            self.audit.close()
        if self.reject_conn is not None:
            await self.reject_conn.close()
        if self.of is not None:
            await self.of.close()
        if self.ovsdb is not None:
            await self.ovsdb.close()
        (self.state / "ready").unlink(missing_ok=True)


def main() -> None:
    ap = argparse.ArgumentParser(prog="fyke-agent")
    ap.add_argument("--node", required=True)
    ap.add_argument("--kubeconfig", default=None)
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--cni-socket", default="/run/fyke/cni.sock")
    ap.add_argument("--ovs-dir", default="", help="OVS run/db dir (default STATE/ovs)")
    ap.add_argument("--bridge", default="br-int")
    ap.add_argument("--datapath-type", choices=("netdev", "system"), default="system")
    ap.add_argument(
        "--audit-log",
        default="",
        help="policy audit log of rules with enableLogging (default STATE/networkpolicy.log)",
    )
    ap.add_argument(
        "--encap",
        choices=sorted(OVERHEAD),
        default="geneve",
        help="how pod traffic crosses nodes: a tunnel, or none (the node's routes)",
    )
    ap.add_argument("--controller", default="", help="fyke-controller URL (https://HOST:PORT)")
    ap.add_argument("--controller-token-file", default="", help="this node's token")
    ap.add_argument("--controller-ca", default="", help="CA certificate the controller uses")
    args = ap.parse_args()
    if args.controller and not (args.controller_token_file and args.controller_ca):
        ap.error("--controller needs --controller-token-file and --controller-ca")
    if not args.ovs_dir:
        args.ovs_dir = str(Path(args.state_dir) / "ovs")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    agent = Agent(args)

    async def go() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(agent.run())
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        done, _ = await asyncio.wait(
            [task, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED
        )
        task.cancel()
        await agent.close()
        for d in done:
            if d is task and not task.cancelled() and task.exception():
                raise task.exception()  # type: ignore[misc]

    asyncio.run(go())


if __name__ == "__main__":
    main()
