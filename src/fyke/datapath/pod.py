"""Feature: pod connectivity on one node (gateway port, local pod ports, conntrack).

Packets from a pod: Classifier marks the source, SpoofGuard admits only the port's own
MAC+IP (and ARP sha/spa), IP goes through conntrack (established/related skip the egress
policy tables), L3Forwarding rewrites eth_dst for local pods or sends everything else to the
gateway, L2ForwardingCalc resolves eth_dst to reg1, ConntrackCommit commits new connections,
Output sends to reg1. ARP never enters conntrack: requests for the gateway IP or a local pod
IP are answered by flows in ARPResponder, other ARP is switched by eth_dst.
"""

from __future__ import annotations

from dataclasses import dataclass

from fyke.datapath import tables as t
from fyke.datapath.fields import (
    CT_ZONE,
    Feature,
    FromGatewayRegMark,
    FromPodRegMark,
    OFPortFoundRegMark,
    RegMark,
    TargetOFPortField,
    make_cookie,
)
from fyke.datapath.flow import (
    ARP_REPLY,
    ARP_REQUEST,
    ETH_TYPE_ARP,
    ETH_TYPE_IP,
    Action,
    Ct,
    Drop,
    Flow,
    Goto,
    LoadReg,
    MatchPair,
    Move,
    OutputInPort,
    OutputReg,
    SetField,
    ct_state,
    reg_match,
)

IP: MatchPair = ("eth_type", ETH_TYPE_IP)
ARP: MatchPair = ("eth_type", ETH_TYPE_ARP)


@dataclass(frozen=True, slots=True, kw_only=True)
class Gateway:
    ofport: int
    ip: str
    mac: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PodPort:
    ofport: int
    name: str
    ip: str
    mac: str


def _flow(
    table: t.Table,
    priority: int,
    match: tuple[MatchPair, ...],
    actions: tuple[Action, ...],
    cookie: int,
) -> Flow:
    return Flow(table=table, priority=priority, match=match, actions=actions, cookie=cookie)


def _arp_responder(ip: str, mac: str, cookie: int, *extra: MatchPair) -> Flow:
    """Turn an ARP request for `ip` into the reply from `mac` and send it back."""
    return _flow(
        t.ARPResponder,
        200,
        (ARP, ("arp_op", ARP_REQUEST), ("arp_tpa", ip), *extra),
        (
            Move(src="eth_src", dst="eth_dst"),
            SetField(field="eth_src", value=mac),
            SetField(field="arp_op", value=ARP_REPLY),
            Move(src="arp_sha", dst="arp_tha"),
            SetField(field="arp_sha", value=mac),
            Move(src="arp_spa", dst="arp_tpa"),
            SetField(field="arp_spa", value=ip),
            OutputInPort(),
        ),
        cookie,
    )


def _to_port(mac: str, ofport: int, cookie: int) -> Flow:
    return _flow(
        t.L2ForwardingCalc,
        200,
        (("eth_dst", mac),),
        (
            LoadReg(mark=RegMark(field=TargetOFPortField, value=ofport)),
            LoadReg(mark=OFPortFoundRegMark),
            Goto(table=t.next_table(t.L2ForwardingCalc)),
        ),
        cookie,
    )


def pipeline_flows(*, round: int) -> list[Flow]:
    """Default flows of every table, and the conntrack flows not tied to a port."""
    c = make_cookie(round=round, feature=Feature.PIPELINE)
    drop: tuple[Action, ...] = (Drop(),)
    flows = [
        _flow(t.ConntrackZone, 200, (IP,), (Ct(zone=CT_ZONE, table=t.ConntrackState),), c),
        _flow(t.ConntrackState, 210, (IP, ct_state(inv=True, trk=True)), drop, c),
        # Established and related connections were admitted when new: skip the policy tables.
        _flow(
            t.ConntrackState,
            200,
            (IP, ct_state(new=False, trk=True)),
            (Goto(table=t.L3Forwarding),),
            c,
        ),
        _flow(
            t.TierPolicyIngress,
            210,
            (IP, ct_state(new=False, trk=True)),
            (Goto(table=t.ConntrackCommit),),
            c,
        ),
        _flow(
            t.ConntrackCommit,
            200,
            (IP, ct_state(new=True, trk=True)),
            (Ct(commit=True, zone=CT_ZONE), Goto(table=t.Output)),
            c,
        ),
        _flow(
            t.Output,
            200,
            (reg_match(OFPortFoundRegMark),),
            (OutputReg(field=TargetOFPortField),),
            c,
        ),
    ]
    # A default (priority 0) flow in every table: drop where a miss means "not ours",
    # otherwise continue with the next table.
    dropping = {t.Classifier, t.SpoofGuard, t.ConntrackZone, t.L2ForwardingCalc, t.Output}
    for table in t.PIPELINE:
        if table in dropping:
            flows.append(_flow(table, 0, (), drop, c))
        elif table is t.ARPResponder:
            flows.append(_flow(table, 0, (), (Goto(table=t.L2ForwardingCalc),), c))
        else:
            flows.append(_flow(table, 0, (), (Goto(table=t.next_table(table)),), c))
    return sorted(flows, key=lambda f: (f.table.id, -f.priority))


def gateway_flows(gw: Gateway, *, round: int) -> list[Flow]:
    c = make_cookie(round=round, feature=Feature.GATEWAY)
    in_port: MatchPair = ("in_port", gw.ofport)
    return [
        _flow(
            t.Classifier,
            200,
            (in_port,),
            (LoadReg(mark=FromGatewayRegMark), Goto(table=t.SpoofGuard)),
            c,
        ),
        # The gateway is the node: it may send from any address.
        _flow(t.SpoofGuard, 200, (in_port, IP), (Goto(table=t.ConntrackZone),), c),
        _flow(t.SpoofGuard, 200, (in_port, ARP), (Goto(table=t.ARPResponder),), c),
        _arp_responder(gw.ip, gw.mac, c, reg_match(FromPodRegMark)),
        # Anything not for a local pod leaves through the gateway.
        _flow(
            t.L3Forwarding,
            190,
            (IP,),
            (SetField(field="eth_dst", value=gw.mac), Goto(table=t.L2ForwardingCalc)),
            c,
        ),
        _to_port(gw.mac, gw.ofport, c),
    ]


def pod_flows(pod: PodPort, *, round: int) -> list[Flow]:
    c = make_cookie(round=round, feature=Feature.POD, obj=pod.ofport)
    in_port: MatchPair = ("in_port", pod.ofport)
    return [
        _flow(
            t.Classifier,
            190,
            (in_port,),
            (LoadReg(mark=FromPodRegMark), Goto(table=t.SpoofGuard)),
            c,
        ),
        _flow(
            t.SpoofGuard,
            200,
            (in_port, IP, ("eth_src", pod.mac), ("ipv4_src", pod.ip)),
            (Goto(table=t.ConntrackZone),),
            c,
        ),
        _flow(
            t.SpoofGuard,
            200,
            (in_port, ARP, ("eth_src", pod.mac), ("arp_spa", pod.ip), ("arp_sha", pod.mac)),
            (Goto(table=t.ARPResponder),),
            c,
        ),
        _arp_responder(pod.ip, pod.mac, c),
        _flow(
            t.L3Forwarding,
            200,
            (IP, ("ipv4_dst", pod.ip)),
            (SetField(field="eth_dst", value=pod.mac), Goto(table=t.L2ForwardingCalc)),
            c,
        ),
        _to_port(pod.mac, pod.ofport, c),
    ]


def pod_connectivity(gw: Gateway, pods: list[PodPort], *, round: int) -> list[Flow]:
    """Every flow of the feature: pipeline defaults, the gateway, each pod port."""
    flows = pipeline_flows(round=round) + gateway_flows(gw, round=round)
    for pod in sorted(pods, key=lambda p: p.ofport):
        flows.extend(pod_flows(pod, round=round))
    return flows
