"""FlowEncoder writes the very bytes os-ken's OFPFlowMod / OFPBundleAddMsg write."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st
from os_ken.ofproto import ofproto_v1_5 as ofp  # type: ignore[import-untyped]
from os_ken.ofproto import ofproto_v1_5_parser as parser

from fyke.api.core import Direction, IPBlock, Protocol
from fyke.datapath import tables
from fyke.datapath.fields import Feature, PktSourceField, RegMark, TargetOFPortField, make_cookie
from fyke.datapath.flow import Action as FlowAction
from fyke.datapath.flow import (
    Conjunction,
    Controller,
    Ct,
    Drop,
    Flow,
    Goto,
    LoadReg,
    Move,
    Output,
    OutputInPort,
    SetField,
    ct_state,
)
from fyke.datapath.policy import NodePolicy, RealizedRule, Service, policy_flows
from fyke.datapath.policy_realize import realize
from fyke.datapath.tunnel import PeerNode, tunnel_flows
from fyke.ovs import translate
from fyke.ovs.encode import FlowEncoder, bundle_add
from fyke.policy.model import Action, Layer
from tests.datapath.test_flows_golden import GW, POD
from tests.datapath.test_policy_flows import SMALL, evaluator, local_ports


def oskens(flow: Flow, command: int = ofp.OFPFC_ADD) -> bytes:
    msg = translate.flow_mod(flow, command)
    msg.set_xid(0)
    msg.serialize()
    return bytes(msg.buf)


def corpus() -> list[Flow]:
    from fyke.datapath.pod import pod_connectivity

    ev = evaluator()
    wide = NodePolicy(
        rules=(
            RealizedRule(
                rule_id=11,
                direction=Direction.EGRESS,
                layer=Layer.ADMIN,
                order=(0, 1, 1.0, 0),
                action=Action.DROP,
                applied=frozenset({3, 5}),
                peers=(
                    IPBlock(
                        cidr=ipaddress.ip_network("10.0.0.0/8"),
                        excepts=(ipaddress.ip_network("10.1.0.0/16"),),
                    ),
                    IPBlock(cidr=ipaddress.ip_network("192.168.7.9/32")),
                ),
                services=(
                    Service(protocol=Protocol.SCTP, start=1000, end=1999),
                    Service(protocol=Protocol.UDP, start=53),
                ),
                logged=True,
            ),
        ),
        isolated_ingress=frozenset({5}),
        logged_isolation=frozenset({(Direction.INGRESS, 5, 11)}),
    )
    cookie = make_cookie(round=3, feature=Feature.TRACEFLOW, obj=9)
    odd = [
        Flow(
            table=tables.ConntrackZone,
            priority=7,
            match=(("eth_type", 0x0800), ct_state(new=True, trk=True), ("ct_mark", (1, 3))),
            actions=(Ct(commit=True, zone=5, table=tables.ConntrackState, nat=True),),
            cookie=cookie,
        ),
        Flow(
            table=tables.Output,
            priority=1,
            # Out of os-ken's order on purpose: the encoder must sort as OFPMatch does.
            match=(("reg3", 4), ("ipv4_dst", "10.2.0.0/16"), ("eth_type", 0x0800)),
            actions=(
                SetField(field="eth_dst", value="02:00:00:00:00:09"),
                Move(src="arp_sha", dst="arp_tha"),
                Output(port=4),
                OutputInPort(),
            ),
            cookie=cookie,
        ),
        Flow(
            table=tables.Output,
            priority=2,
            match=(("conj_id", 77), ("eth_type", 0x0800)),
            actions=(Controller(userdata=b"\x01\x02"),),
            cookie=cookie,
        ),
        Flow(
            table=tables.EgressRule,
            priority=3,
            match=(("eth_type", 0x0800), ("in_port", 9)),
            actions=(
                Conjunction(id=5, clause=1, n_clauses=3),
                Conjunction(id=6, clause=2, n_clauses=2),
            ),
            cookie=cookie,
        ),
        Flow(table=tables.Output, priority=0, match=(), actions=(Drop(),), cookie=0),
        # No actions at all (a drop too): no instruction, not an empty apply-actions.
        Flow(table=tables.Output, priority=4, match=(("reg0", 5),), actions=(), cookie=0),
        # Out-of-range values take os-ken's own path (it writes what it writes).
        Flow(
            table=tables.Output,
            priority=4,
            match=(("eth_type", 0x0800), ("ip_proto", 6), ("tcp_dst", -1)),
            actions=(Drop(),),
            cookie=0,
        ),
        Flow(
            table=tables.Classifier,
            priority=9,
            match=(("tun_ipv4_src", "192.0.2.1"),),
            actions=(Goto(table=tables.SpoofGuard),),
            cookie=(1 << 64) - 1,
        ),
    ]
    return [
        *pod_connectivity(GW, [POD], round=1),
        *tunnel_flows(1, [PeerNode(name="n2", ip="192.0.2.2", pod_cidr="10.20.0.0/24")], round=1),
        *policy_flows(SMALL, round=2),
        *policy_flows(wide, round=2),
        *policy_flows(realize(ev, local_ports(ev)), round=4),
        *odd,
    ]


def test_flow_mods_are_byte_identical_to_os_kens() -> None:
    flows = corpus()
    enc = FlowEncoder()
    for flow in flows:
        assert enc.flow_mod(flow) == oskens(flow), flow
    # Warm caches give the same answers (shared TLVs and instruction blocks).
    assert [enc.flow_mod(f) for f in flows] == [oskens(f) for f in flows]
    # Other commands too.
    assert enc.flow_mod(flows[0], ofp.OFPFC_MODIFY_STRICT) == oskens(
        flows[0], ofp.OFPFC_MODIFY_STRICT
    )


def test_equal_actions_in_distinct_tuples_encode_alike() -> None:
    enc = FlowEncoder()
    a = Flow(table=tables.Output, priority=1, match=(), actions=(Output(port=1),), cookie=1)
    b = Flow(table=tables.Output, priority=1, match=(), actions=(Output(port=2),), cookie=1)
    assert enc.flow_mod(a) != enc.flow_mod(b)
    assert enc.flow_mod(b) == oskens(b)


def test_bundle_add_is_byte_identical_to_os_kens() -> None:
    flow = corpus()[3]
    flags = ofp.OFPBF_ATOMIC | ofp.OFPBF_ORDERED
    msg = parser.OFPBundleAddMsg(translate.DP, 0x1234, flags, translate.flow_mod(flow), [])
    msg.set_xid(0xABCDEF)
    msg.serialize()
    mine = bundle_add(
        FlowEncoder().flow_mod(flow),
        bundle_id=0x1234,
        flags=flags,
        xid=0xABCDEF,
    )
    assert mine == bytes(msg.buf)


# --- any flow: a property test against os-ken -------------------------------------------

_MAC = st.builds(lambda b: ":".join(f"{x:02x}" for x in b), st.binary(min_size=6, max_size=6))
_IP = st.builds(lambda b: ".".join(str(x) for x in b), st.binary(min_size=4, max_size=4))
_PREFIX = st.builds(lambda ip, n: f"{ip}/{n}", _IP, st.integers(1, 32))


def _int_or_masked(bits: int) -> st.SearchStrategy[object]:
    top = (1 << bits) - 1
    return st.one_of(st.integers(0, top), st.tuples(st.integers(0, top), st.integers(0, top)))


_FIELDS: dict[str, st.SearchStrategy[object]] = {
    "in_port": st.integers(1, 0xFFFFFF00),
    "eth_type": st.sampled_from([0x0800, 0x0806, 0x86DD]),
    "eth_src": _MAC,
    "eth_dst": _MAC,
    "ipv4_src": st.one_of(_IP, _PREFIX),
    "ipv4_dst": st.one_of(_IP, _PREFIX),
    "ip_proto": st.integers(0, 255),
    "tcp_src": _int_or_masked(16),
    "tcp_dst": _int_or_masked(16),
    "udp_dst": _int_or_masked(16),
    "sctp_src": _int_or_masked(16),
    "conj_id": st.integers(0, 0xFFFFFFFF),
    "arp_op": st.integers(0, 0xFFFF),
    "arp_spa": _IP,
    "arp_tha": _MAC,
    "ct_state": st.tuples(st.integers(0, 0xFF), st.integers(0, 0xFF)),
    "ct_mark": _int_or_masked(32),
    "ct_zone": st.integers(0, 0xFFFF),
    "tun_ipv4_dst": _IP,
    **{f"reg{i}": _int_or_masked(32) for i in (0, 1, 2, 7, 15)},
}

_ACTIONS: list[tuple[FlowAction, ...]] = [
    (),
    (Drop(),),
    (Goto(table=tables.L3Forwarding),),
    (Output(port=3), OutputInPort()),
    (Ct(commit=True, zone=0xFFF0, table=tables.ConntrackState, nat=True),),
    (SetField(field="eth_dst", value="02:00:00:00:00:01"), Goto(table=tables.Output)),
    (LoadReg(mark=RegMark(field=TargetOFPortField, value=9)), Goto(table=tables.Output)),
    (LoadReg(mark=RegMark(field=PktSourceField, value=2)),),
    (Move(src="eth_src", dst="eth_dst"), Move(src="arp_spa", dst="arp_tpa")),
    (Controller(userdata=b"\x01\x00\x00\x00\x00\x00\x00\x07", meter=1),),
    (Controller(userdata=b"\x02"),),
    (Conjunction(id=1025, clause=2, n_clauses=3),),
    (Conjunction(id=7, clause=1, n_clauses=2), Conjunction(id=0xFFFFFF, clause=2, n_clauses=2)),
]

_FLOWS = st.builds(
    lambda match, actions, prio, cookie, table: Flow(
        table=table, priority=prio, match=tuple(match.items()), actions=actions, cookie=cookie
    ),
    st.dictionaries(st.sampled_from(sorted(_FIELDS)), st.none(), max_size=5).flatmap(
        lambda keys: st.fixed_dictionaries({k: _FIELDS[k] for k in keys})
    ),
    st.sampled_from(_ACTIONS),
    st.integers(0, 0xFFFF),
    st.integers(0, (1 << 64) - 1),
    st.sampled_from([tables.Classifier, tables.EgressRule, tables.IngressRule, tables.Output]),
)

_SHARED = FlowEncoder()  # caches across examples, as across the flows of one sync


@settings(max_examples=400, deadline=None)
@given(st.lists(_FLOWS, min_size=1, max_size=6))
def test_any_flow_encodes_as_os_ken_does(flows: list[Flow]) -> None:
    for flow in flows:
        want = oskens(flow)
        assert FlowEncoder().flow_mod(flow) == want, flow
        assert _SHARED.flow_mod(flow) == want, flow
