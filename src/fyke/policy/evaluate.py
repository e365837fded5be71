"""The evaluator: the verdict for one connection and the rule that decides it, per side.

A connection from endpoint S to endpoint D on PROTO/PORT passes S's egress rules (when S
is a pod) and then D's ingress rules (when D is a pod). On each side rules are walked in
layer order (model.Layer); the first matching Allow, Drop or Reject decides; Pass jumps to
the next layer; a pod a K8s NetworkPolicy isolates is dropped at the end of that layer;
otherwise the connection is allowed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fyke.api.core import Direction, Pod, PortSpec, Protocol
from fyke.api.fields import IPAddress
from fyke.policy.cluster import Cluster, Endpoint
from fyke.policy.model import (
    PASS_TARGET,
    Action,
    CompiledPolicies,
    IPTerm,
    Layer,
    NodeTerm,
    PodTerm,
    PolicyInfo,
    Rule,
    Term,
)
from fyke.policy.selection import Selection

ANY = None  # a peer set that holds every endpoint


@dataclass(frozen=True, slots=True, kw_only=True)
class SideDecision:
    """What one side (egress at the source, ingress at the destination) decided."""

    direction: Direction
    verdict: Action  # ALLOW, DROP or REJECT
    rule: Rule | None = None
    isolated_by: tuple[PolicyInfo, ...] = ()
    passed: tuple[Rule, ...] = ()
    applies: bool = True  # False: the endpoint is outside the cluster; no policy applies


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    verdict: Action
    egress: SideDecision
    ingress: SideDecision


def port_matches(
    ports: Sequence[PortSpec] | None, dst: Pod | None, proto: Protocol, port: int
) -> bool:
    if ports is None:
        return True
    for ps in ports:
        if not ps.source_covers_clients():
            continue  # its source ports leave out client ports: see PortSpec
        if ps.named:
            if dst is not None and any(
                cp.name == ps.named
                and cp.protocol == proto
                and cp.port == port
                and (ps.protocol is None or ps.protocol == proto)
                for cp in dst.ports
            ):
                return True
        elif ps.protocol == proto and (
            ps.start is None or ps.start <= port <= (ps.end if ps.end is not None else ps.start)
        ):
            return True
    return False


class Evaluator:
    """Answers connection queries over one cluster and one compiled policy set."""

    def __init__(self, cluster: Cluster, policies: CompiledPolicies) -> None:
        self.cluster = cluster
        self.policies = policies
        self.selection = Selection(cluster)
        n = len(cluster.pods)
        self._applied: dict[Direction, list[list[Rule]]] = {
            d: [[] for _ in range(n)] for d in Direction
        }
        self._isolated: dict[Direction, list[list[PolicyInfo]]] = {
            d: [[] for _ in range(n)] for d in Direction
        }
        self._peer_cache: dict[tuple[int, str], frozenset[int]] = {}
        self._peer_shared: dict[tuple[object, ...], frozenset[int]] = {}
        self._relative: dict[int, bool] = {}
        self._term_pods: dict[Term, frozenset[int]] = {}
        selected_cache: dict[tuple[PodTerm, ...], list[int]] = {}
        for rule in policies.rules:  # already in evaluation order
            for i in self._selected(rule.applied_to, selected_cache):
                self._applied[rule.direction][i].append(rule)
        for iso in policies.isolations:
            for i in self._selected(iso.applied_to, selected_cache):
                self._isolated[iso.direction][i].append(iso.policy)

    # --- selection ---------------------------------------------------------------------

    def _selected(
        self, terms: tuple[PodTerm, ...], cache: dict[tuple[PodTerm, ...], list[int]]
    ) -> list[int]:
        found = cache.get(terms)
        if found is None:
            found = sorted({i for t in terms for i in self.selection.pods(t)})
            cache[terms] = found
        return found

    def _ip_in_terms(self, terms: Iterable[Term], ip: IPAddress) -> bool:
        for t in terms:
            if isinstance(t, IPTerm) and t.block.contains(ip):
                return True
            if isinstance(t, NodeTerm) and any(
                ip in node.ips and t.selector.matches(node.labels) for node in self.cluster.nodes
            ):
                return True
        return False

    def _pods_in_term(self, term: Term) -> frozenset[int]:
        """Pods with an IP in an ipBlock / node-selector term (many policies name the
        same blocks: each distinct term is checked against the pods once)."""
        found = self._term_pods.get(term)
        if found is None:
            found = frozenset(
                i
                for i, pod in enumerate(self.cluster.pods)
                if any(self._ip_in_terms((term,), ip) for ip in pod.ips)
            )
            self._term_pods[term] = found
        return found

    def is_relative(self, rule: Rule) -> bool:
        """Whether the rule's peers depend on the protected pod's namespace."""
        found = self._relative.get(rule.id)
        if found is None:
            found = rule.peers is not None and any(
                isinstance(t, PodTerm) and t.relative for t in rule.peers
            )
            self._relative[rule.id] = found
        return found

    def peer_pods(self, rule: Rule, subject: int) -> frozenset[int] | None:
        """Pods the rule's peers select, seen from the protected pod `subject`."""
        peers = rule.peers
        if peers is None:
            return ANY
        relative = self.is_relative(rule)
        subject_pod = self.cluster.pods[subject]
        key = (rule.id, subject_pod.namespace if relative else "")
        found = self._peer_cache.get(key)
        if found is not None:
            return found
        # Rules of one policy often share their peers: compute each distinct set once.
        shared_key = (peers, key[1])
        found = self._peer_shared.get(shared_key)
        if found is None:
            members: set[int] = set()
            other_terms: list[Term] = []
            for t in peers:
                if isinstance(t, PodTerm):
                    members.update(self.selection.pods(t, subject_pod))
                else:
                    other_terms.append(t)
            for t in other_terms:
                # ipBlocks and node selectors also match pods by their IPs.
                members.update(self._pods_in_term(t))
            found = frozenset(members)
            self._peer_shared[shared_key] = found
        self._peer_cache[key] = found
        return found

    def _peer_matches(self, rule: Rule, subject: int, peer: Endpoint) -> bool:
        if rule.peers is None:
            return True
        if peer.pod is not None:
            members = self.peer_pods(rule, subject)
            return members is ANY or peer.pod in members
        assert peer.ip is not None
        return self._ip_in_terms(rule.peers, peer.ip)

    # --- decisions ---------------------------------------------------------------------

    def candidates(self, direction: Direction, subject: int, peer: Endpoint) -> list[Rule]:
        """Rules protecting `subject` in `direction` whose peers match, in order."""
        return [
            r for r in self._applied[direction][subject] if self._peer_matches(r, subject, peer)
        ]

    def applied(self, direction: Direction, subject: int) -> list[Rule]:
        """Rules protecting `subject` in `direction`, in order."""
        return self._applied[direction][subject]

    def isolated_by(self, direction: Direction, subject: int) -> list[PolicyInfo]:
        return self._isolated[direction][subject]

    def walk(
        self,
        direction: Direction,
        candidates: Sequence[Rule],
        isolated_by: Sequence[PolicyInfo],
        dst: Pod | None,
        proto: Protocol,
        port: int,
    ) -> SideDecision:
        resume: int = Layer.ADMIN
        passed: list[Rule] = []
        netpol_done = False
        for rule in candidates:
            layer = rule.policy.layer
            if layer > Layer.NETWORK_POLICY and not netpol_done:
                netpol_done = True
                if isolated_by:
                    break  # default isolation ends the NetworkPolicy layer
            if layer < resume or not port_matches(rule.ports, dst, proto, port):
                continue
            if rule.action is Action.PASS:
                passed.append(rule)
                resume = PASS_TARGET[layer]
                continue
            return SideDecision(
                direction=direction, verdict=rule.action, rule=rule, passed=tuple(passed)
            )
        if isolated_by:
            return SideDecision(
                direction=direction,
                verdict=Action.DROP,
                isolated_by=tuple(isolated_by),
                passed=tuple(passed),
            )
        return SideDecision(direction=direction, verdict=Action.ALLOW, passed=tuple(passed))

    def side(
        self,
        direction: Direction,
        subject: Endpoint,
        peer: Endpoint,
        dst: Pod | None,
        proto: Protocol,
        port: int,
    ) -> SideDecision:
        if subject.pod is None or self.cluster.pods[subject.pod].host_network:
            return SideDecision(direction=direction, verdict=Action.ALLOW, applies=False)
        cands = self.candidates(direction, subject.pod, peer)
        return self.walk(
            direction, cands, self.isolated_by(direction, subject.pod), dst, proto, port
        )

    def decide(self, src: Endpoint, dst: Endpoint, proto: Protocol, port: int) -> Decision:
        dst_pod = self.cluster.pods[dst.pod] if dst.pod is not None else None
        egress = self.side(Direction.EGRESS, src, dst, dst_pod, proto, port)
        ingress = self.side(Direction.INGRESS, dst, src, dst_pod, proto, port)
        verdict = egress.verdict if egress.verdict is not Action.ALLOW else ingress.verdict
        return Decision(verdict=verdict, egress=egress, ingress=ingress)
