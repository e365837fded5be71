"""Policy flows: golden text, flow counts, and a differential test on a real OVS bridge.

The differential test puts the 9 pods of the scenario cluster (x/y/z x a/b/c) on one br-int
(internal ports, namespace fyke-tp-node, no traffic), installs the pod pipeline plus the
policy flows, and checks that `ofproto/trace` of every ordered pair on 80/TCP, 81/TCP,
80/UDP and 80/SCTP ends as fyke.policy's Evaluator decides: output to the destination port (allow),
nothing (drop), or the reject controller action of the deciding rule (reject).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import textwrap
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fyke.api.core import Direction, IPBlock, Protocol
from fyke.api.load import load_texts
from fyke.datapath.fields import Feature, cookie_feature, cookie_object
from fyke.datapath.flow import render
from fyke.datapath.pod import Gateway, PodPort, pod_connectivity
from fyke.datapath.policy import (
    NodePolicy,
    RealizedRule,
    Service,
    peer_networks,
    policy_flows,
    port_ranges,
    reject_userdata,
)
from fyke.datapath.policy_realize import realize
from fyke.ovs import ovsdb
from fyke.ovs.daemons import OvsDaemons
from fyke.ovs.openflow import OFConnection
from fyke.ovs.reconcile import reconcile
from fyke.policy.cluster import Cluster, Endpoint
from fyke.policy.compile import compile_policies
from fyke.policy.evaluate import Evaluator
from fyke.policy.model import Action, Layer
from tests.datapath.conftest import sh
from tests.unit.scenarios._harness import PODS, manifest, pod_ip


def _doc(api: str, kind: str, name: str, spec: str, namespace: str | None = None) -> str:
    body = textwrap.indent(textwrap.dedent(spec).strip(), "  ")
    ns = f"  namespace: {namespace}\n" if namespace else ""
    return f"apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: {name}\n{ns}spec:\n{body}\n"


ANTREA = "crd.antrea.io/v1beta1"
ANP_API = "policy.networking.k8s.io/v1alpha1"
NP_API = "networking.k8s.io/v1"

POLICIES = [
    # K8s NP: x/a isolated both ways; in from y on a named port and 81/UDP; out to
    # 10.0.0.0/16 except z on 80-81/TCP (endPort).
    _doc(
        NP_API,
        "NetworkPolicy",
        "x-a",
        """
        podSelector: {matchLabels: {pod: a}}
        policyTypes: [Ingress, Egress]
        ingress:
        - from: [{namespaceSelector: {matchLabels: {ns: y}}}]
          ports: [{port: serve-80-tcp}, {protocol: UDP, port: 81}]
        egress:
        - to: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.0.2.0/24]}}]
          ports: [{protocol: TCP, port: 80, endPort: 81}]
        """,
        "x",
    ),
    # K8s NP: every pod of y isolated for ingress; x/b may come in on 80/UDP.
    _doc(
        NP_API,
        "NetworkPolicy",
        "y-in",
        """
        podSelector: {}
        policyTypes: [Ingress]
        ingress:
        - from: [{namespaceSelector: {matchLabels: {ns: x}}, podSelector: {matchLabels: {pod: b}}}]
          ports: [{protocol: UDP, port: 80}]
        """,
        "y",
    ),
    # ANP on z: Pass from x, Deny from y/c, Allow egress to y on 81/TCP.
    _doc(
        ANP_API,
        "AdminNetworkPolicy",
        "anp-z",
        """
        priority: 10
        subject: {namespaces: {matchLabels: {ns: z}}}
        ingress:
        - {name: pass-x, action: Pass, from: [{namespaces: {matchLabels: {ns: x}}}]}
        - name: deny-y-c
          action: Deny
          from: [{pods: {namespaceSelector: {matchLabels: {ns: y}},
                         podSelector: {matchLabels: {pod: c}}}}]
        egress:
        - name: allow-y-81
          action: Allow
          to: [{namespaces: {matchLabels: {ns: y}}}]
          ports: [{portNumber: {protocol: TCP, port: 81}}]
        """,
    ),
    # BANP: z denies x (reached by the ANP's Pass) and UDP out of z to y.
    _doc(
        ANP_API,
        "BaselineAdminNetworkPolicy",
        "default",
        """
        subject: {namespaces: {matchLabels: {ns: z}}}
        ingress:
        - {name: deny-x, action: Deny, from: [{namespaces: {matchLabels: {ns: x}}}]}
        egress:
        - name: deny-udp-to-y
          action: Deny
          to: [{namespaces: {matchLabels: {ns: y}}}]
          ports: [{portNumber: {protocol: UDP, port: 80}}]
        """,
    ),
    # Antrea securityops: y/c rejects 80/TCP to z; x/c drops UDP from z; x passes z's TCP;
    # y/a admits z on 81/TCP (over y's isolation).
    _doc(
        ANTREA,
        "ClusterNetworkPolicy",
        "secops",
        """
        priority: 5
        tier: securityops
        egress:
        - action: Reject
          appliedTo: [{namespaceSelector: {matchLabels: {ns: y}},
                       podSelector: {matchLabels: {pod: c}}}]
          to: [{namespaceSelector: {matchLabels: {ns: z}}}]
          ports: [{protocol: TCP, port: 80}]
        ingress:
        - action: Drop
          appliedTo: [{namespaceSelector: {matchLabels: {ns: x}},
                       podSelector: {matchLabels: {pod: c}}}]
          from: [{namespaceSelector: {matchLabels: {ns: z}}}]
          ports: [{protocol: UDP}]
        - action: Pass
          appliedTo: [{namespaceSelector: {matchLabels: {ns: x}}}]
          from: [{namespaceSelector: {matchLabels: {ns: z}}}]
          ports: [{protocol: TCP}]
        - action: Allow
          appliedTo: [{namespaceSelector: {matchLabels: {ns: y}},
                       podSelector: {matchLabels: {pod: a}}}]
          from: [{namespaceSelector: {matchLabels: {ns: z}}}]
          ports: [{protocol: TCP, port: 81}]
        """,
    ),
    # Antrea baseline tier on x (Pass is not allowed there): z/a allowed (over the BANP),
    # the rest of z dropped on 81/TCP.
    _doc(
        ANTREA,
        "ClusterNetworkPolicy",
        "baseline-x",
        """
        priority: 1
        tier: baseline
        appliedTo: [{namespaceSelector: {matchLabels: {ns: x}}}]
        ingress:
        - action: Allow
          from: [{namespaceSelector: {matchLabels: {ns: z}}, podSelector: {matchLabels: {pod: a}}}]
        - action: Drop
          from: [{namespaceSelector: {matchLabels: {ns: z}}}]
          ports: [{protocol: TCP, port: 81}]
        """,
    ),
    # Antrea source ports on z/b's egress: a Reject from client ports 30000-61000 (which
    # hold the traces' source port 40000, like every client port) on 80/UDP, and a Drop of
    # everything from ports 1000-2000 (no client's).
    _doc(
        ANTREA,
        "ClusterNetworkPolicy",
        "source-ports-z-b",
        """
        priority: 2
        tier: securityops
        appliedTo:
        - {namespaceSelector: {matchLabels: {ns: z}}, podSelector: {matchLabels: {pod: b}}}
        egress:
        - action: Drop
          to: [{namespaceSelector: {}}]
          ports: [{protocol: TCP, sourcePort: 1000, sourceEndPort: 2000}]
        - action: Reject
          to: [{namespaceSelector: {matchLabels: {ns: y}}}]
          ports: [{protocol: UDP, port: 80, sourcePort: 30000, sourceEndPort: 61000}]
        """,
    ),
]

# SCTP cannot be probed with sockets here (no SCTP in this kernel): the trace checks it.
PROBES = ((Protocol.TCP, 80), (Protocol.TCP, 81), (Protocol.UDP, 80), (Protocol.SCTP, 80))


def evaluator() -> Evaluator:
    inv = load_texts([("policy-flows", manifest(POLICIES))])
    return Evaluator(Cluster(inv.namespaces, inv.pods, inv.nodes), compile_policies(inv))


def pod_mac(pod: str) -> str:
    a, b, c, d = ipaddress.IPv4Address(pod_ip(pod)).packed
    return f"02:00:{a:02x}:{b:02x}:{c:02x}:{d:02x}"


def ofport_of(pod: str) -> int:
    return 10 + PODS.index(pod)


def local_ports(ev: Evaluator) -> dict[int, int]:
    return {ev.cluster.index[p]: ofport_of(p) for p in PODS}


# --- pure -----------------------------------------------------------------------------

SMALL = NodePolicy(
    rules=(
        RealizedRule(
            rule_id=7,
            direction=Direction.INGRESS,
            layer=Layer.ADMIN,
            order=(0, 100, 1.0, 0),
            action=Action.REJECT,
            applied=frozenset({3, 4}),
            peers=(IPBlock(cidr=ipaddress.ip_network("10.0.2.0/24")),),
            services=(Service(protocol=Protocol.TCP, start=80, end=81),),
        ),
        RealizedRule(
            rule_id=8,
            direction=Direction.EGRESS,
            layer=Layer.NETWORK_POLICY,
            order=(1, 0, 0.0, 0),
            action=Action.ALLOW,
            applied=frozenset({3}),
            peers=None,
            services=(Service(protocol=Protocol.UDP),),
        ),
        RealizedRule(
            rule_id=9,
            direction=Direction.INGRESS,
            layer=Layer.ANTREA_BASELINE,
            order=(2, 253, 1.0, 0),
            action=Action.PASS,
            applied=frozenset({4}),
            peers=None,
            services=None,
        ),
    ),
    isolated_egress=frozenset({3}),
)


def test_small_rule_set_golden() -> None:
    got = [render(f, symbolic=True) for f in policy_flows(SMALL, round=1)]
    assert got == [
        "cookie=0x1040000000008, table=EgressRule, priority=60000,ip,in_port=3"
        " actions=conjunction(8193,1/2)",
        "cookie=0x1040000000008, table=EgressRule, priority=60000,ip,nw_proto=17"
        " actions=conjunction(8193,2/2)",
        "cookie=0x1040000000008, table=EgressRule, priority=60000,ip,conj_id=8193"
        " actions=goto_table:L3Forwarding",
        "cookie=0x104fffffffffe, table=EgressRule, priority=30000,ip,in_port=3 actions=drop",
        "cookie=0x104ffffffffff, table=TierPolicyIngress, priority=65000,ip,ct_state=-new+trk"
        " actions=goto_table:ConntrackCommit",
        "cookie=0x1040000000007, table=TierPolicyIngress, priority=60000,ip,reg1=3"
        " actions=conjunction(7169,1/3)",
        "cookie=0x1040000000007, table=TierPolicyIngress, priority=60000,ip,reg1=4"
        " actions=conjunction(7169,1/3)",
        "cookie=0x1040000000007, table=TierPolicyIngress, priority=60000,ip,"
        "nw_src=10.0.2.0/24 actions=conjunction(7169,2/3)",
        "cookie=0x1040000000007, table=TierPolicyIngress, priority=60000,ip,nw_proto=6,"
        "tp_dst=0x50/0xfffe actions=conjunction(7169,3/3)",
        "cookie=0x1040000000007, table=TierPolicyIngress, priority=60000,ip,conj_id=7169"
        " actions=controller(userdata=01.00.00.00.00.00.00.07,meter_id=1)",
        "cookie=0x1040000000009, table=IngressRule, priority=29999,ip,reg1=4"
        " actions=goto_table:IngressDefault",
    ]


@pytest.mark.skipif(shutil.which("ovs-ofctl") is None, reason="needs ovs-ofctl")
def test_rendered_policy_flows_parse_with_ovs_ofctl() -> None:
    for flow in policy_flows(SMALL, round=1):
        text = render(flow).replace(", ", ",")
        out = subprocess.run(
            ["ovs-ofctl", "-O", "OpenFlow15", "parse-flow", text],
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert out.returncode == 0, f"{text}: {out.stderr}"


def test_flows_per_rule_is_n_plus_m_plus_k_plus_1() -> None:
    ev = evaluator()
    node = realize(ev, local_ports(ev))
    per_rule = Counter(cookie_object(f.cookie) for f in policy_flows(node, round=1))
    expected: Counter[int] = Counter()
    for r in node.rules:
        n = len(r.applied)
        m = len(peer_networks(r.peers)) if r.peers is not None else 0
        # A service is one match per destination (value, mask) times one per source one.
        k = sum(
            (len(port_ranges(s.start, s.end or s.start)) if s.start else 1)
            * (len(port_ranges(s.src_start, s.src_end or s.src_start)) if s.src_start else 1)
            for s in r.services or ()
        )
        clauses = 1 + (r.peers is not None) + (r.services is not None)
        expected[r.rule_id] += n + m + k + (1 if clauses > 1 else 0)
    for rule_id, want in expected.items():
        if sum(1 for r in node.rules if r.rule_id == rule_id) == 1:
            assert per_rule[rule_id] == want, rule_id
        else:
            # Split rules (named ports) share their identical clause flows.
            assert per_rule[rule_id] < want, rule_id
    assert len(expected) == len({r.id for r in ev.policies.rules})


def test_port_ranges_and_excepts() -> None:
    assert port_ranges(80, 81) == [(80, 0xFFFE)]
    assert port_ranges(1, 6) == [(1, 0xFFFF), (2, 0xFFFE), (4, 0xFFFE), (6, 0xFFFF)]
    assert port_ranges(0, 65535) == [(0, 0)]
    nets = peer_networks(
        [
            IPBlock(
                cidr=ipaddress.ip_network("10.0.0.0/22"),
                excepts=(ipaddress.ip_network("10.0.2.0/24"),),
            )
        ]
    )
    assert [str(n) for n in nets] == ["10.0.0.0/23", "10.0.3.0/24"]
    assert reject_userdata(7) == bytes.fromhex("0100000000000007")


def _collapsed(peers: list[IPBlock]) -> list[ipaddress.IPv4Network]:
    """The reference: ipaddress's own exclusion and collapse."""
    nets: list[ipaddress.IPv4Network] = []
    for block in peers:
        parts = [block.cidr]
        for exc in block.excepts:
            nxt = []
            for p in parts:
                if exc.supernet_of(p):
                    continue
                nxt.extend(p.address_exclude(exc) if p.supernet_of(exc) else [p])
            parts = nxt
        nets.extend(parts)
    return list(ipaddress.collapse_addresses(nets))


_NETS = st.builds(
    lambda a, n: ipaddress.IPv4Network((a >> (32 - n) << (32 - n), n)),
    # Addresses near each other (and near the ends), so blocks touch, nest and overlap.
    st.one_of(
        st.integers(0x0A000000, 0x0A0000FF),
        st.integers(0, 255),
        st.integers(2**32 - 256, 2**32 - 1),
    ),
    st.integers(0, 32),
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.builds(
            lambda c, ex: IPBlock(cidr=c, excepts=tuple(ex)),
            _NETS,
            st.lists(_NETS, max_size=3),
        ),
        max_size=6,
    )
)
def test_peer_networks_equal_ipaddress_collapse(peers: list[IPBlock]) -> None:
    assert peer_networks(peers) == _collapsed(peers)


# --- real OVS -------------------------------------------------------------------------

NODE_NS = "fyke-tp-node"
OVS_DIR = Path("/tmp/fyke-tp-node")
BRIDGE = "br-int"
GW_IP = "10.0.255.254"


@dataclass
class PolicyNode:
    loop: asyncio.AbstractEventLoop
    daemons: OvsDaemons
    conn: OFConnection
    gateway: Gateway
    pods: dict[str, PodPort]

    def trace_all(self, flows: list[str]) -> list[str]:
        async def run() -> list[str]:
            sem = asyncio.Semaphore(8)

            async def one(flow: str) -> str:
                async with sem:
                    return await self.daemons.appctl(
                        "ofproto/trace", BRIDGE, flow, "--ct-next", "trk,new"
                    )

            return list(await asyncio.gather(*(one(f) for f in flows)))

        return self.loop.run_until_complete(run())


def _remove_leftovers() -> None:
    for pidfile in OVS_DIR.glob("*.pid"):
        with contextlib.suppress(ValueError, OSError):
            pid = int(pidfile.read_text().strip())
            if str(OVS_DIR) in Path(f"/proc/{pid}/cmdline").read_text():
                os.kill(pid, signal.SIGKILL)
    sh(f"ip netns del {NODE_NS}", check=False)
    shutil.rmtree(OVS_DIR, ignore_errors=True)


@pytest.fixture(scope="module")
def pnode() -> Iterator[PolicyNode]:
    if os.geteuid() != 0 or shutil.which("ovs-vswitchd") is None:
        pytest.skip("needs root and Open vSwitch")
    _remove_leftovers()
    loop = asyncio.new_event_loop()
    daemons: OvsDaemons | None = None
    db: ovsdb.Ovsdb | None = None
    conn: OFConnection | None = None
    try:
        sh(f"ip netns add {NODE_NS}")
        daemons = loop.run_until_complete(OvsDaemons.start(dir=OVS_DIR, netns=NODE_NS))
        db = loop.run_until_complete(ovsdb.Ovsdb.connect(daemons.paths.db_remote))
        ports = [
            ovsdb.AddPort(
                bridge=BRIDGE,
                name=f"fyke-tp-{p.replace('/', '')}",
                type="internal",
                ofport_request=ofport_of(p),
            )
            for p in PODS
        ]
        loop.run_until_complete(
            db.transact(
                ovsdb.AddBridge(name=BRIDGE, datapath_type="netdev"),
                ovsdb.gateway_port(BRIDGE, 2),
                *ports,
            )
        )
        gw_port = loop.run_until_complete(db.get_ofport(ovsdb.GATEWAY_PORT))
        pods = {}
        for p, cmd in zip(PODS, ports, strict=True):
            got = loop.run_until_complete(db.get_ofport(cmd.name))
            assert got == ofport_of(p)
            pods[p] = PodPort(ofport=got, name=cmd.name, ip=pod_ip(p), mac=pod_mac(p))
        gateway = Gateway(ofport=gw_port, ip=GW_IP, mac="02:00:0a:00:ff:fe")
        conn = loop.run_until_complete(OFConnection.connect(daemons.paths.mgmt(BRIDGE)))
        yield PolicyNode(loop=loop, daemons=daemons, conn=conn, gateway=gateway, pods=pods)
    finally:
        if conn is not None:
            loop.run_until_complete(conn.close())
        if db is not None:
            loop.run_until_complete(db.close())
        if daemons is not None:
            loop.run_until_complete(daemons.stop())
        loop.close()
        sh(f"ip netns del {NODE_NS}", check=False)
        shutil.rmtree(OVS_DIR, ignore_errors=True)


def trace_flow(node: PolicyNode, src: str, dst: str, proto: Protocol, port: int) -> str:
    s, d = node.pods[src], node.pods[dst]
    l4 = {
        Protocol.TCP: "tcp,tcp_src=40000,tcp_dst",
        Protocol.UDP: "udp,udp_src=40000,udp_dst",
        Protocol.SCTP: "sctp,sctp_src=40000,sctp_dst",
    }[proto]
    return (
        f"in_port={s.ofport},dl_src={s.mac},dl_dst={node.gateway.mac},"
        f"{l4}={port},nw_src={s.ip},nw_dst={d.ip},nw_ttl=64"
    )


def traced_verdict(trace: str, dst_port: int) -> tuple[str, bytes | None]:
    """allow: output to the destination port; reject: our controller action (with its
    userdata); drop: neither."""
    m = re.search(r"controller\([^)]*userdata=([0-9a-f.]+)", trace)
    if m:
        return "reject", bytes.fromhex(m.group(1).replace(".", ""))
    if re.search(rf"output port is {dst_port}\b|output:{dst_port}\b", trace):
        return "allow", None
    return "drop", None


def test_policy_flows_match_the_evaluator_on_ovs(pnode: PolicyNode) -> None:
    ev = evaluator()
    policy = realize(ev, local_ports(ev))
    flows = policy_flows(policy, round=1)
    desired = pod_connectivity(pnode.gateway, list(pnode.pods.values()), round=1) + flows
    first = pnode.loop.run_until_complete(reconcile(pnode.conn, desired))
    assert first.added == len(desired)
    # Conjunction and controller actions read back byte-equal: nothing to redo.
    again = pnode.loop.run_until_complete(reconcile(pnode.conn, desired))
    assert not again.changed, again

    cases = [(s, d, proto, port) for s in PODS for d in PODS if s != d for proto, port in PROBES]
    traces = pnode.trace_all([trace_flow(pnode, *c) for c in cases])
    wrong = []
    seen: Counter[str] = Counter()
    for (src, dst, proto, port), trace in zip(cases, traces, strict=True):
        decision = ev.decide(
            Endpoint(pod=ev.cluster.index[src]), Endpoint(pod=ev.cluster.index[dst]), proto, port
        )
        want = decision.verdict.value
        got, userdata = traced_verdict(trace, pnode.pods[dst].ofport)
        seen[want] += 1
        if got != want:
            wrong.append(f"{src} -> {dst} {port}/{proto}: evaluator {want}, OVS {got}")
        elif want == "reject":
            side = decision.egress if decision.egress.verdict is Action.REJECT else decision.ingress
            assert side.rule is not None
            assert userdata == reject_userdata(side.rule.id), trace
    assert not wrong, f"{len(wrong)} of {len(cases)} differ:\n" + "\n".join(wrong)
    assert set(seen) == {"allow", "drop", "reject"}, seen
    assert all(cookie_feature(f.cookie) == Feature.POLICY for f in flows)
