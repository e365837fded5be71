"""Feature: pod traffic between nodes over a flow-based tunnel port (Geneve or VXLAN).

One tunnel port serves every peer: the peer's node IP is written to tun_dst per packet.

Out: a packet for a peer node's podCIDR gets, in L3Forwarding, eth_dst = TUNNEL_MAC (a
     MAC no device owns) and tun_dst = the peer's node IP; L2ForwardingCalc resolves
     TUNNEL_MAC to the tunnel port. Egress policy ran before L3Forwarding (at the source
     pod); ingress policy runs on the destination node.
In:  a packet from the tunnel port is marked FromTunnel in Classifier and skips
     SpoofGuard (the sending node's SpoofGuard admitted it); it goes through conntrack and
     the ingress policy tables of the destination pod like any other packet.

In noEncap mode there is no tunnel port: packets for other nodes leave through the
gateway (the gateway flow in L3Forwarding) and the node's kernel routes them
(fyke.agent.noderoutes).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from fyke.datapath import tables as t
from fyke.datapath.fields import (
    Feature,
    FromTunnelRegMark,
    OFPortFoundRegMark,
    RegMark,
    TargetOFPortField,
    make_cookie,
)
from fyke.datapath.flow import ETH_TYPE_IP, Flow, Goto, LoadReg, SetField

TUNNEL_MAC = "aa:bb:cc:dd:ee:ff"  # Antrea uses the same virtual MAC for tunnelled packets
# Bytes an encapsulated packet adds on the underlay (outer IPv4 20 + UDP 8 + header 8 +
# inner Ethernet 14); Geneve options would add more, fyke sends none.
OVERHEAD = {"geneve": 50, "vxlan": 50, "none": 0}


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerNode:
    name: str
    ip: str  # the node's address on the underlay (Node InternalIP)
    pod_cidr: str


def tunnel_flows(tunnel_ofport: int, peers: list[PeerNode], *, round: int) -> list[Flow]:
    c = make_cookie(round=round, feature=Feature.TUNNEL)
    flows = [
        Flow(
            table=t.Classifier,
            priority=200,
            match=(("in_port", tunnel_ofport),),
            actions=(LoadReg(mark=FromTunnelRegMark), Goto(table=t.ConntrackZone)),
            cookie=c,
        ),
        Flow(
            table=t.L2ForwardingCalc,
            priority=200,
            match=(("eth_dst", TUNNEL_MAC),),
            actions=(
                LoadReg(mark=RegMark(field=TargetOFPortField, value=tunnel_ofport)),
                LoadReg(mark=OFPortFoundRegMark),
                Goto(table=t.next_table(t.L2ForwardingCalc)),
            ),
            cookie=c,
        ),
    ]
    for peer in sorted(peers, key=lambda p: ipaddress.IPv4Address(p.ip)):
        net = ipaddress.IPv4Network(peer.pod_cidr)
        flows.append(
            Flow(
                table=t.L3Forwarding,
                priority=200,
                match=(
                    ("eth_type", ETH_TYPE_IP),
                    ("ipv4_dst", str(net)),
                ),
                actions=(
                    SetField(field="eth_dst", value=TUNNEL_MAC),
                    SetField(field="tun_ipv4_dst", value=peer.ip),
                    Goto(table=t.L2ForwardingCalc),
                ),
                cookie=make_cookie(
                    round=round, feature=Feature.TUNNEL, obj=int(ipaddress.IPv4Address(peer.ip))
                ),
            )
        )
    return flows
