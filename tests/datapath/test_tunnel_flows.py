"""Tunnel flows (golden text) and the node route controller's view of peers."""

from __future__ import annotations

from fyke.agent.noderoutes import peers_of
from fyke.datapath.flow import render
from fyke.datapath.tunnel import PeerNode, tunnel_flows
from fyke.lab.scheduler import pick


def _node(name: str, cidr: str | None, ip: str | None) -> dict[str, object]:
    node: dict[str, object] = {"metadata": {"name": name}, "spec": {}}
    if cidr:
        node["spec"] = {"podCIDR": cidr}
    if ip:
        node["status"] = {"addresses": [{"type": "InternalIP", "address": ip}]}
    return node


def test_tunnel_flows_golden() -> None:
    peers = [
        PeerNode(name="node-3", ip="192.168.77.13", pod_cidr="10.244.3.0/24"),
        PeerNode(name="node-2", ip="192.168.77.12", pod_cidr="10.244.2.0/24"),
    ]
    got = [render(f, symbolic=True) for f in tunnel_flows(1, peers, round=1)]
    assert got == [
        "cookie=0x1060000000000, table=Classifier, priority=200,in_port=1"
        " actions=set_field:0x3/0xf->reg0,goto_table:ConntrackZone",
        "cookie=0x1060000000000, table=L2ForwardingCalc, priority=200,dl_dst=aa:bb:cc:dd:ee:ff"
        " actions=set_field:0x1->reg1,set_field:0x100/0x100->reg0,goto_table:TierPolicyIngress",
        "cookie=0x10600c0a84d0c, table=L3Forwarding, priority=200,ip,nw_dst=10.244.2.0/24"
        " actions=set_field:aa:bb:cc:dd:ee:ff->eth_dst,set_field:192.168.77.12->tun_dst,"
        "goto_table:L2ForwardingCalc",
        "cookie=0x10600c0a84d0d, table=L3Forwarding, priority=200,ip,nw_dst=10.244.3.0/24"
        " actions=set_field:aa:bb:cc:dd:ee:ff->eth_dst,set_field:192.168.77.13->tun_dst,"
        "goto_table:L2ForwardingCalc",
    ]


def test_no_peers_no_peer_flows() -> None:
    assert len(tunnel_flows(1, [], round=1)) == 2


def test_peers_are_other_nodes_with_cidr_and_ip() -> None:
    nodes = [
        _node("node-1", "10.244.1.0/24", "192.168.77.11"),
        _node("node-2", "10.244.2.0/24", "192.168.77.12"),
        _node("node-3", None, "192.168.77.13"),  # no podCIDR yet
        _node("node-4", "10.244.4.0/24", None),  # no address yet
        _node("node-5", "fd00::/64", "192.168.77.15"),  # not IPv4: skipped
    ]
    assert peers_of(nodes, "node-1") == [
        PeerNode(name="node-2", ip="192.168.77.12", pod_cidr="10.244.2.0/24")
    ]


def test_scheduler_picks_the_least_loaded_node() -> None:
    pods = [{"spec": {"nodeName": n}} for n in ("node-1", "node-1", "node-2")]
    assert pick(["node-2", "node-1", "node-3"], pods) == "node-3"
    assert pick(["node-2", "node-1"], pods) == "node-2"
    assert pick(["node-1", "node-2"], []) == "node-1"  # ties by name
    assert pick([], pods) is None
