"""From compiled policies to the realized rules of one node (datapath.policy.NodePolicy).

The Evaluator already knows which rules protect which pod and which pods a rule's peers
select; this keeps the node's pods, turns peers into addresses and resolves named ports:

- a rule whose peers depend on the protected pod's namespace (Antrea `namespaces: Self`,
  sameLabels) is split per set of protected pods that see the same peers;
- named ports resolve on the destination pod: for ingress on the protected pod (split by
  the protected pods' resolved ports), for egress on the peer pod (split by the peer pods'
  resolved ports; an address outside the cluster has no named ports). Numeric ports stay
  in one sub-rule with all peers; the sub-rules of one rule share its priority and action,
  so together they match what the rule matches.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Mapping, Sequence

from fyke.api.core import Direction, IPBlock, Pod, PortSpec
from fyke.datapath.policy import NodePolicy, RealizedRule, Service
from fyke.policy.evaluate import Evaluator
from fyke.policy.model import IPTerm, NodeTerm, Rule


def resolve_named(ports: Sequence[PortSpec], pod: Pod) -> frozenset[Service]:
    """The named ports of `ports` as they resolve on `pod`."""
    out = set()
    for ps in ports:
        if not ps.named:
            continue
        for cp in pod.ports:
            if cp.name == ps.named and (ps.protocol is None or ps.protocol == cp.protocol):
                out.add(Service(protocol=cp.protocol, start=cp.port, end=cp.port))
    return frozenset(out)


def _numeric(ports: Sequence[PortSpec]) -> tuple[Service, ...]:
    return tuple(
        Service(protocol=ps.protocol, start=ps.start, end=ps.end)
        for ps in ports
        if not ps.named and ps.protocol is not None
    )


def _pod_blocks(ev: Evaluator, pods: Sequence[int]) -> tuple[IPBlock, ...]:
    cluster_pods = ev.cluster.pods
    return tuple(
        IPBlock(cidr=ipaddress.ip_network(ip))
        for i in sorted(pods)
        if not cluster_pods[i].host_network
        for ip in cluster_pods[i].ips
    )


def peer_blocks(ev: Evaluator, rule: Rule, subject: int) -> tuple[IPBlock, ...] | None:
    """The rule's peers as addresses, seen from the protected pod `subject`."""
    if rule.peers is None:
        return None
    members = ev.peer_pods(rule, subject)
    assert members is not None
    blocks = list(_pod_blocks(ev, sorted(members)))
    for term in rule.peers:
        if isinstance(term, IPTerm):
            blocks.append(term.block)
        elif isinstance(term, NodeTerm):
            blocks.extend(
                IPBlock(cidr=ipaddress.ip_network(ip))
                for node in ev.cluster.nodes
                if term.selector.matches(node.labels)
                for ip in node.ips
            )
    return tuple(blocks)


def _split(
    ev: Evaluator, rule: Rule, subjects: list[int], local: Mapping[int, int]
) -> list[tuple[frozenset[int], tuple[IPBlock, ...] | None, tuple[Service, ...] | None]]:
    """(applied ofports, peers, services) of each sub-rule for one group of subjects that
    see the same peers."""
    applied = frozenset(local[i] for i in subjects)
    peers = peer_blocks(ev, rule, subjects[0])
    if rule.ports is None:
        return [(applied, peers, None)]
    out: list[tuple[frozenset[int], tuple[IPBlock, ...] | None, tuple[Service, ...] | None]] = []
    numeric = _numeric(rule.ports)
    if numeric:
        out.append((applied, peers, numeric))
    if not rule.has_named_ports:
        return out
    pods = ev.cluster.pods
    if rule.direction is Direction.INGRESS:
        by_ports: dict[frozenset[Service], list[int]] = defaultdict(list)
        for i in subjects:
            by_ports[resolve_named(rule.ports, pods[i])].append(local[i])
        for services, ofports in sorted(
            by_ports.items(), key=lambda kv: sorted(s.key() for s in kv[0])
        ):
            if services:
                out.append((frozenset(ofports), peers, tuple(sorted(services, key=Service.key))))
    else:
        members = ev.peer_pods(rule, subjects[0])
        candidates = range(len(pods)) if members is None else sorted(members)
        by_dst: dict[frozenset[Service], list[int]] = defaultdict(list)
        for j in candidates:
            if not pods[j].host_network:
                by_dst[resolve_named(rule.ports, pods[j])].append(j)
        for services, dsts in sorted(by_dst.items(), key=lambda kv: sorted(s.key() for s in kv[0])):
            if services:
                out.append(
                    (applied, _pod_blocks(ev, dsts), tuple(sorted(services, key=Service.key)))
                )
    return out


def realize(ev: Evaluator, local: Mapping[int, int]) -> NodePolicy:
    """The policy of the node whose local pods are `local` (pod index -> ofport)."""
    pods = ev.cluster.pods
    mine = {i: port for i, port in local.items() if not pods[i].host_network}
    protected: dict[int, list[int]] = defaultdict(list)
    for direction in Direction:
        for i in sorted(mine):
            for rule in ev.applied(direction, i):
                protected[rule.id].append(i)
    rules: list[RealizedRule] = []
    for rule in ev.policies.rules:
        subjects = protected.get(rule.id)
        if not subjects:
            continue
        groups: dict[str, list[int]] = defaultdict(list)
        for i in subjects:
            groups[pods[i].namespace if ev.is_relative(rule) else ""].append(i)
        sub = 0
        for key in sorted(groups):
            for applied, peers, services in _split(ev, rule, groups[key], mine):
                rules.append(
                    RealizedRule(
                        rule_id=rule.id,
                        sub=sub,
                        direction=rule.direction,
                        layer=rule.policy.layer,
                        order=rule.order,
                        action=rule.action,
                        applied=applied,
                        peers=peers,
                        services=services,
                        logged=rule.logged,
                    )
                )
                sub += 1
    return NodePolicy(
        rules=tuple(rules),
        isolated_egress=frozenset(
            p for i, p in mine.items() if ev.isolated_by(Direction.EGRESS, i)
        ),
        isolated_ingress=frozenset(
            p for i, p in mine.items() if ev.isolated_by(Direction.INGRESS, i)
        ),
    )
