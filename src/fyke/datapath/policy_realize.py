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
import weakref
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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
                out.add(
                    Service(
                        protocol=cp.protocol,
                        start=cp.port,
                        end=cp.port,
                        src_start=ps.src_start,
                        src_end=ps.src_end,
                    )
                )
    return frozenset(out)


def _numeric(ports: Sequence[PortSpec]) -> tuple[Service, ...]:
    return tuple(
        Service(
            protocol=ps.protocol,
            start=ps.start,
            end=ps.end,
            src_start=ps.src_start,
            src_end=ps.src_end,
        )
        for ps in ports
        if not ps.named and ps.protocol is not None
    )


class _Shared:
    """Work that every node's realization of one compiled cluster shares: each pod's
    address blocks, each rule's peers (per namespace for a relative rule)."""

    def __init__(self, ev: Evaluator) -> None:
        self.blocks: list[tuple[IPBlock, ...]] = [
            ()
            if pod.host_network
            else tuple(IPBlock(cidr=ipaddress.ip_network(ip)) for ip in pod.ips)
            for pod in ev.cluster.pods
        ]
        self.peers: dict[tuple[int, str], tuple[IPBlock, ...] | None] = {}
        # One tuple per distinct peer set (by pods and address terms), so rules with the
        # same peers share it and the flow builder collapses its addresses once.
        self.peer_sets: dict[tuple[tuple[int, ...], tuple[Any, ...]], tuple[IPBlock, ...]] = {}
        # An egress rule's named-port split of its peers (by the ports they resolve to).
        self.egress_named: dict[
            tuple[int, str], list[tuple[tuple[Service, ...], tuple[IPBlock, ...]]]
        ] = {}


_SHARED: weakref.WeakKeyDictionary[Evaluator, _Shared] = weakref.WeakKeyDictionary()


def _shared(ev: Evaluator) -> _Shared:
    found = _SHARED.get(ev)
    if found is None:
        found = _SHARED[ev] = _Shared(ev)
    return found


def _pod_blocks(ev: Evaluator, pods: Sequence[int]) -> tuple[IPBlock, ...]:
    blocks = _shared(ev).blocks
    return tuple(b for i in sorted(pods) for b in blocks[i])


def peer_blocks(ev: Evaluator, rule: Rule, subject: int) -> tuple[IPBlock, ...] | None:
    """The rule's peers as addresses, seen from the protected pod `subject`."""
    if rule.peers is None:
        return None
    shared = _shared(ev)
    key = (rule.id, ev.cluster.pods[subject].namespace if ev.is_relative(rule) else "")
    if key in shared.peers:
        return shared.peers[key]
    members = ev.peer_pods(rule, subject)
    assert members is not None
    pods = tuple(sorted(members))
    terms = tuple(
        term.block if isinstance(term, IPTerm) else id(term)
        for term in rule.peers
        if isinstance(term, IPTerm | NodeTerm)
    )
    found = shared.peer_sets.get((pods, terms))
    if found is not None:
        shared.peers[key] = found
        return found
    blocks = list(_pod_blocks(ev, pods))
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
    shared.peers[key] = shared.peer_sets[(pods, terms)] = found = tuple(blocks)
    return found


@dataclass(frozen=True, slots=True, kw_only=True)
class PodRule:
    """One split of a rule for a set of protected pods, by pod index (no ofports yet).

    split names the split stably across recompiles ("" for a rule that needs none): the
    protected pods' namespace for a rule whose peers depend on it, then "named:" and the
    resolved services for a named-port split. A controller names groups after it.
    """

    rule: Rule
    split: str
    applied: frozenset[int]
    peers: tuple[IPBlock, ...] | None
    services: tuple[Service, ...] | None


def _split(
    ev: Evaluator, rule: Rule, subjects: list[int], prefix: str
) -> list[tuple[str, frozenset[int], tuple[IPBlock, ...] | None, tuple[Service, ...] | None]]:
    """(split, applied pods, peers, services) of each sub-rule for one group of subjects
    that see the same peers."""
    applied = frozenset(subjects)
    peers = peer_blocks(ev, rule, subjects[0])
    if rule.ports is None:
        return [(prefix, applied, peers, None)]
    out: list[tuple[str, frozenset[int], tuple[IPBlock, ...] | None, tuple[Service, ...] | None]]
    out = []
    numeric = _numeric(rule.ports)
    if numeric:
        out.append((prefix, applied, peers, numeric))
    if not rule.has_named_ports:
        return out
    pods = ev.cluster.pods

    def name(services: tuple[Service, ...]) -> str:
        text = ",".join(f"{s.start}/{s.protocol.value}" for s in services)
        return f"{prefix}|named:{text}" if prefix else f"named:{text}"

    if rule.direction is Direction.INGRESS:
        by_ports: dict[frozenset[Service], list[int]] = defaultdict(list)
        for i in subjects:
            by_ports[resolve_named(rule.ports, pods[i])].append(i)
        for services, protected in sorted(
            by_ports.items(), key=lambda kv: sorted(s.key() for s in kv[0])
        ):
            if services:
                ordered = tuple(sorted(services, key=Service.key))
                out.append((name(ordered), frozenset(protected), peers, ordered))
    else:
        shared = _shared(ev)
        split = shared.egress_named.get((rule.id, prefix))
        if split is None:
            members = ev.peer_pods(rule, subjects[0])
            candidates = range(len(pods)) if members is None else sorted(members)
            by_dst: dict[frozenset[Service], list[int]] = defaultdict(list)
            for j in candidates:
                if not pods[j].host_network:
                    by_dst[resolve_named(rule.ports, pods[j])].append(j)
            split = shared.egress_named[(rule.id, prefix)] = [
                (tuple(sorted(services, key=Service.key)), _pod_blocks(ev, dsts))
                for services, dsts in sorted(
                    by_dst.items(), key=lambda kv: sorted(s.key() for s in kv[0])
                )
                if services
            ]
        for ordered, blocks in split:
            out.append((name(ordered), applied, blocks, ordered))
    return out


def realize_pods(ev: Evaluator, mine: Iterable[int]) -> list[PodRule]:
    """The rules protecting the pods `mine` (pod indices; host-network pods are skipped),
    split where peers or named ports differ between them, in compile order."""
    pods = ev.cluster.pods
    local = sorted(i for i in mine if not pods[i].host_network)
    protected: dict[int, list[int]] = defaultdict(list)
    for direction in Direction:
        for i in local:
            for rule in ev.applied(direction, i):
                protected[rule.id].append(i)
    out: list[PodRule] = []
    for rule in ev.policies.rules:
        subjects = protected.get(rule.id)
        if not subjects:
            continue
        groups: dict[str, list[int]] = defaultdict(list)
        for i in subjects:
            groups[pods[i].namespace if ev.is_relative(rule) else ""].append(i)
        for key in sorted(groups):
            prefix = f"ns:{key}" if key else ""
            for split, applied, peers, services in _split(ev, rule, groups[key], prefix):
                out.append(
                    PodRule(rule=rule, split=split, applied=applied, peers=peers, services=services)
                )
    return out


def realize(ev: Evaluator, local: Mapping[int, int]) -> NodePolicy:
    """The policy of the node whose local pods are `local` (pod index -> ofport)."""
    pods = ev.cluster.pods
    mine = {i: port for i, port in local.items() if not pods[i].host_network}
    rules: list[RealizedRule] = []
    subs: dict[int, int] = defaultdict(int)
    for pr in realize_pods(ev, mine):
        rule = pr.rule
        rules.append(
            RealizedRule(
                rule_id=rule.id,
                sub=subs[rule.id],
                direction=rule.direction,
                layer=rule.policy.layer,
                order=rule.order,
                action=rule.action,
                applied=frozenset(mine[i] for i in pr.applied),
                peers=pr.peers,
                services=pr.services,
                logged=rule.logged,
            )
        )
        subs[rule.id] += 1
    return NodePolicy(
        rules=tuple(rules),
        isolated_egress=frozenset(
            p for i, p in mine.items() if ev.isolated_by(Direction.EGRESS, i)
        ),
        isolated_ingress=frozenset(
            p for i, p in mine.items() if ev.isolated_by(Direction.INGRESS, i)
        ),
    )
