"""The controller's compilation: internal policies that reference AppliedToGroups and
AddressGroups, each group with its members and its span (the nodes that need it).

Identical selectors share one group, so a cluster where every namespace has a
default-deny policy holds one AppliedToGroup per namespace, not one per policy. A rule
whose peers are relative to the protected pod's namespace (Antrea `namespaces: match:
Self` or `sameLabels`) is split per namespace of its protected pods.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from fyke.api.core import Direction, IPBlock, PortSpec
from fyke.policy.cluster import Cluster
from fyke.policy.model import (
    Action,
    CompiledPolicies,
    IPTerm,
    NodeTerm,
    PodTerm,
    PolicyInfo,
    Term,
)
from fyke.policy.selection import Selection


def term_key(t: PodTerm) -> str:
    """A canonical text for a term: equal meaning written alike gives the same key."""
    parts = [
        "ns=" + ",".join(sorted(t.namespaces)) if t.namespaces is not None else "ns=*",
        f"nsSel={t.namespace_selector}" if t.namespace_selector is not None else "",
        f"podSel={t.pod_selector}" if t.pod_selector is not None else "",
        f"sa={t.service_account[0]}/{t.service_account[1]}" if t.service_account else "",
        "self" if t.same_namespace else "",
        "same=" + ",".join(t.same_labels) if t.same_labels else "",
        "notSame=" + ",".join(t.not_same_labels) if t.not_same_labels else "",
    ]
    return ";".join(p for p in parts if p)


@dataclass(slots=True, kw_only=True)
class Group:
    name: str
    key: str
    pods: list[int]
    span: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True, kw_only=True)
class InternalRule:
    direction: Direction
    index: int
    name: str
    action: Action
    order: tuple[object, ...]
    address_groups: tuple[str, ...]  # empty with any_peer False and no blocks: nothing
    ip_blocks: tuple[IPBlock, ...]
    any_peer: bool
    ports: tuple[PortSpec, ...] | None
    applied_to_groups: tuple[str, ...]


@dataclass(slots=True, kw_only=True)
class InternalPolicy:
    uid: str
    source: PolicyInfo
    rules: list[InternalRule] = field(default_factory=list)
    applied_to_groups: set[str] = field(default_factory=set)
    isolated: set[Direction] = field(default_factory=set)
    span: set[str] = field(default_factory=set)


@dataclass(slots=True, kw_only=True)
class ControllerState:
    applied_to_groups: dict[str, Group]
    address_groups: dict[str, Group]
    policies: dict[str, InternalPolicy]


class _Compiler:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.selection = Selection(cluster)
        self.applied: dict[str, Group] = {}
        self.address: dict[str, Group] = {}
        self.policies: dict[str, InternalPolicy] = {}
        # The compiled rules share their term tuples (a policy's appliedTo, a rule's
        # peers), so the same tuple object is asked about again and again: remember the
        # answer by identity before paying for a canonical key. The tuples outlive this
        # compiler, so their ids stay unique meanwhile.
        self._by_id: dict[tuple[int, str, str], Group] = {}
        self._policy_by_id: dict[int, InternalPolicy] = {}

    def _group(
        self, table: dict[str, Group], terms: Iterable[PodTerm], subject_ns: str, kind: str
    ) -> Group:
        key = "|".join(sorted(term_key(t) for t in terms))
        if subject_ns:
            key = f"{key}@{subject_ns}"
        g = table.get(key)
        if g is None:
            subject = None
            if subject_ns:
                subject = next((p for p in self.cluster.pods if p.namespace == subject_ns), None)
            members: set[int] = set()
            for t in terms:
                members.update(self.selection.pods(t, subject))
            digest = hashlib.sha1(f"{kind}:{key}".encode(), usedforsecurity=False).hexdigest()
            g = Group(name=digest[:20], key=key, pods=sorted(members))
            table[key] = g
        return g

    def _shared(
        self, table: dict[str, Group], terms: tuple[Term, ...], subject_ns: str, kind: str
    ) -> Group:
        ident = (id(terms), subject_ns, kind)
        g = self._by_id.get(ident)
        if g is None:
            pod_terms = [t for t in terms if isinstance(t, PodTerm)]
            g = self._group(table, pod_terms, subject_ns, kind)
            self._by_id[ident] = g
        return g

    def address_group(self, peers: tuple[Term, ...], subject_ns: str) -> Group:
        """The AddressGroup of a rule's pod peers."""
        return self._shared(self.address, peers, subject_ns, "AddressGroup")

    def applied_group(self, terms: tuple[PodTerm, ...]) -> Group:
        return self._shared(self.applied, terms, "", "AppliedToGroup")

    def policy(self, info: PolicyInfo) -> InternalPolicy:
        p = self._policy_by_id.get(id(info))
        if p is None:
            uid = f"{info.kind}:{info.namespace}/{info.name}"
            p = self.policies.get(uid)
            if p is None:
                p = InternalPolicy(uid=uid, source=info)
                self.policies[uid] = p
            self._policy_by_id[id(info)] = p
        return p

    def per_namespace(self, terms: tuple[PodTerm, ...]) -> dict[str, Group]:
        whole = self.applied_group(terms)
        by_ns: dict[str, list[int]] = defaultdict(list)
        for i in whole.pods:
            by_ns[self.cluster.pods[i].namespace].append(i)
        out = {}
        for ns in by_ns:
            scoped = tuple(
                PodTerm(
                    namespaces=frozenset({ns}) if t.namespaces is None else t.namespaces & {ns},
                    namespace_selector=t.namespace_selector,
                    pod_selector=t.pod_selector,
                    service_account=t.service_account,
                )
                for t in terms
            )
            out[ns] = self._group(self.applied, scoped, "", "AppliedToGroup")
        return out


def compile_groups(cluster: Cluster, compiled: CompiledPolicies) -> ControllerState:
    c = _Compiler(cluster)
    for iso in compiled.isolations:
        p = c.policy(iso.policy)
        p.isolated.add(iso.direction)
        p.applied_to_groups.add(c.applied_group(iso.applied_to).name)
    for rule in compiled.rules:
        p = c.policy(rule.policy)
        peers = rule.peers or ()
        relative = any(isinstance(t, PodTerm) and t.relative for t in peers)
        targets: list[tuple[str, Group]]
        if relative:
            targets = sorted(c.per_namespace(rule.applied_to).items())
        else:
            targets = [("", c.applied_group(rule.applied_to))]
        has_pods = any(isinstance(t, PodTerm) for t in peers)
        blocks = tuple(t.block for t in peers if isinstance(t, IPTerm))
        nodes = [t for t in peers if isinstance(t, NodeTerm)]
        if nodes:
            # Node peers are the selected nodes' addresses, resolved now as Antrea does.
            blocks += tuple(
                IPBlock(cidr=ipaddress.ip_network(ip))
                for t in nodes
                for n in cluster.nodes
                if t.selector.matches(n.labels)
                for ip in n.ips
            )
        for subject_ns, applied in targets:
            address: tuple[str, ...] = ()
            if has_pods:
                g = c.address_group(peers, subject_ns)
                address = (g.name,)
            p.applied_to_groups.add(applied.name)
            p.rules.append(
                InternalRule(
                    direction=rule.direction,
                    index=rule.index,
                    name=rule.name,
                    action=rule.action,
                    order=rule.order,
                    address_groups=address,
                    ip_blocks=blocks,
                    any_peer=rule.peers is None,
                    ports=rule.ports,
                    applied_to_groups=(applied.name,),
                )
            )
    _spans(c, cluster)
    return ControllerState(
        applied_to_groups={g.name: g for g in c.applied.values()},
        address_groups={g.name: g for g in c.address.values()},
        policies=c.policies,
    )


def _spans(c: _Compiler, cluster: Cluster) -> None:
    """A group is needed on the nodes of the pods it protects; an AddressGroup on the nodes
    of every policy that refers to it."""
    pods = cluster.pods
    applied_by_name = {g.name: g for g in c.applied.values()}
    address_by_name = {g.name: g for g in c.address.values()}
    for g in applied_by_name.values():
        g.span = {pods[i].node_name for i in g.pods if pods[i].node_name}
    for p in c.policies.values():
        for name in p.applied_to_groups:
            p.span |= applied_by_name[name].span
        for r in p.rules:
            for name in r.address_groups:
                address_by_name[name].span |= p.span
