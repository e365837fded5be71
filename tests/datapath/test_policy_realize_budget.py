"""The realizer on generated clusters: no crash, and flows within the conjunction budget."""

from __future__ import annotations


def test_services_of_one_protocol_with_and_without_ports_sort() -> None:
    """A rule listing `protocol: TCP` (every port) beside `port: 80` once crashed the
    realizer (None compared with an int)."""
    from fyke.api.core import Protocol
    from fyke.datapath.policy import Service, service_matches

    got = service_matches(
        [Service(protocol=Protocol.TCP, start=80, end=80), Service(protocol=Protocol.TCP)]
    )
    assert got == [(("ip_proto", 6),), (("ip_proto", 6), ("tcp_dst", 80))]


def test_generated_cluster_realizes_within_the_conjunction_budget() -> None:
    """bench/flows_per_rule.py's input: flows built <= 1.05 x the n+m+k+1 ideal."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))
    import gen_netpol
    from fyke.api.load import load_objects
    from fyke.datapath.policy import peer_networks, policy_flows, service_matches
    from fyke.datapath.policy_realize import realize
    from fyke.policy.cluster import Cluster
    from fyke.policy.compile import compile_policies
    from fyke.policy.evaluate import Evaluator

    inv = load_objects(gen_netpol.generate(gen_netpol.Shape(5, 10), 40, 3))
    ev = Evaluator(Cluster(inv.namespaces, inv.pods, inv.nodes), compile_policies(inv))
    node = realize(ev, {i: 3 + i for i in range(len(ev.cluster.pods))})
    ideal = sum(
        len(r.applied)
        + (0 if r.peers is None else len(peer_networks(r.peers)))
        + (0 if r.services is None else len(service_matches(r.services)))
        + 1
        for r in node.rules
    )
    flows = policy_flows(node, round=1)
    assert node.rules and len(flows) <= 1.05 * ideal + 400  # + the flows of no rule
