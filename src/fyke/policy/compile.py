"""Compiles every supported policy kind into the internal model (model.Rule, Isolation)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from fyke.api import adminpolicy, antrea
from fyke.api.adminpolicy import AdminPeer, AdminPolicy, AdminSelection, AdminTier
from fyke.api.antrea import AntreaGroup, AntreaPeer, AntreaPolicy, Tier
from fyke.api.core import EPHEMERAL_PORTS, Direction, IPBlock, Service
from fyke.api.errors import ValidationError
from fyke.api.load import Inventory
from fyke.api.netpol import API_VERSION as NETPOL_API_VERSION
from fyke.api.netpol import NetworkPolicy, NetworkPolicyPeer
from fyke.policy.model import (
    ANP_TIER_PRIORITY,
    BANP_POLICY_PRIORITY,
    BANP_TIER_PRIORITY,
    BASELINE_TIER_PRIORITY,
    CNP_ADMIN_TIER_PRIORITY,
    Action,
    CompiledPolicies,
    IPTerm,
    Isolation,
    Layer,
    NodeTerm,
    PodTerm,
    PolicyInfo,
    Rule,
    Term,
)

_ACTIONS = {
    "Allow": Action.ALLOW,
    "Accept": Action.ALLOW,
    "Deny": Action.DROP,
    "Drop": Action.DROP,
    "Reject": Action.REJECT,
    "Pass": Action.PASS,
}


@dataclass(slots=True)
class _Builder:
    rules: list[Rule] = field(default_factory=list)
    isolations: list[Isolation] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def add(
        self,
        policy: PolicyInfo,
        direction: Direction,
        index: int,
        name: str,
        action: str,
        applied_to: tuple[PodTerm, ...],
        peers: tuple[Term, ...] | None,
        ports: Sequence[object] | None,
        *,
        logged: bool = False,
        log_label: str = "",
    ) -> None:
        self.rules.append(
            Rule(
                id=len(self.rules),
                policy=policy,
                direction=direction,
                index=index,
                name=name,
                action=_ACTIONS[action],
                action_text=action,
                applied_to=applied_to,
                peers=peers,
                ports=None if ports is None else tuple(ports),  # type: ignore[arg-type]
                logged=logged,
                log_label=log_label,
            )
        )


def compile_policies(inv: Inventory, *, strict: bool = True) -> CompiledPolicies:
    """The internal rules of every policy in the inventory, in evaluation order.

    strict (the offline tools): an object the others make invalid (a policy naming a Tier
    that does not exist, two Tiers of one priority, groups nested too deep) is an error.
    Lenient (the controller, which must go on enforcing everything else): such an object
    is left out, whole, and listed in `invalid`.
    """
    b = _Builder(warnings=list(inv.warnings))
    invalid: list[tuple[str, str, str, str, str]] = []
    logged = {
        ns.name for ns in inv.namespaces if ns.annotations.get(NP_LOGGING_ANNOTATION) == "true"
    }
    for np in inv.network_policies:
        _network_policy(b, np, logged=np.namespace in logged)
    for ap in inv.admin_policies:
        _admin_policy(b, ap)
    tiers = _tiers(inv.tiers, None if strict else invalid)
    groups = _Groups(inv.groups, inv.services, b.warnings)
    for pol in inv.antrea_policies:
        if strict:
            _antrea_policy(b, pol, tiers, groups)
            continue
        mark = (len(b.rules), len(b.isolations), len(b.warnings))
        try:
            _antrea_policy(b, pol, tiers, groups)
        except ValidationError as e:
            del b.rules[mark[0] :], b.isolations[mark[1] :], b.warnings[mark[2] :]
            invalid.append((f"{antrea.GROUP}/v1beta1", pol.kind, pol.namespace, pol.name, str(e)))
            b.warnings.append(f"skipping invalid object: {e}")
    rules = sorted(b.rules, key=lambda r: r.order)
    return CompiledPolicies(
        rules=tuple(rules),
        isolations=tuple(b.isolations),
        warnings=tuple(b.warnings),
        invalid=tuple(invalid),
    )


# --- networking.k8s.io NetworkPolicy -------------------------------------------------------


# As Antrea: a Namespace annotated so has its NetworkPolicies' rules and the isolation
# drops they cause written to the agents' audit log.
NP_LOGGING_ANNOTATION = "networkpolicy.antrea.io/enable-logging"


def _network_policy(b: _Builder, np: NetworkPolicy, *, logged: bool = False) -> None:
    info = PolicyInfo(
        kind="NetworkPolicy",
        api_version=NETPOL_API_VERSION,
        namespace=np.namespace,
        name=np.name,
        tier="NetworkPolicy",
        layer=Layer.NETWORK_POLICY,
        priority=None,
        order=(Layer.NETWORK_POLICY, 0, 0.0, 0, np.namespace, np.name),
    )
    applied = (PodTerm(namespaces=frozenset({np.namespace}), pod_selector=np.pod_selector),)
    for direction, rules in ((Direction.INGRESS, np.ingress), (Direction.EGRESS, np.egress)):
        if direction not in np.policy_types:
            continue  # rules of a direction not in policyTypes have no effect
        b.isolations.append(
            Isolation(policy=info, direction=direction, applied_to=applied, logged=logged)
        )
        for rule in rules:
            peers = None
            if rule.peers is not None:
                peers = tuple(_np_peer(p, np.namespace) for p in rule.peers)
            b.add(
                info, direction, rule.index, "", "Allow", applied, peers, rule.ports, logged=logged
            )


def _np_peer(p: NetworkPolicyPeer, namespace: str) -> Term:
    if p.ip_block is not None:
        return IPTerm(block=p.ip_block)
    if p.namespace_selector is None:
        return PodTerm(namespaces=frozenset({namespace}), pod_selector=p.pod_selector)
    return PodTerm(namespace_selector=p.namespace_selector, pod_selector=p.pod_selector)


# --- policy.networking.k8s.io AdminNetworkPolicy, BANP, ClusterNetworkPolicy -----------------


def _admin_policy(b: _Builder, ap: AdminPolicy) -> None:
    if ap.kind == adminpolicy.ANP:
        layer, tier_prio, tier_name = Layer.ADMIN, ANP_TIER_PRIORITY, "AdminNetworkPolicy"
        prio: float = ap.priority
    elif ap.kind == adminpolicy.BANP:
        layer, tier_prio, tier_name = Layer.BASELINE, BANP_TIER_PRIORITY, "Baseline"
        prio = BANP_POLICY_PRIORITY
    elif ap.tier is AdminTier.ADMIN:
        layer, tier_prio, tier_name = Layer.ADMIN, CNP_ADMIN_TIER_PRIORITY, "Admin"
        prio = ap.priority
    else:
        layer, tier_prio, tier_name = Layer.BASELINE, BANP_TIER_PRIORITY, "Baseline"
        prio = ap.priority
    kind_rank = 0 if ap.kind == adminpolicy.BANP else 1
    info = PolicyInfo(
        kind=ap.kind,
        api_version=ap.api_version,
        namespace="",
        name=ap.name,
        tier=tier_name,
        layer=layer,
        priority=None if ap.kind == adminpolicy.BANP else float(ap.priority),
        order=(layer, tier_prio, prio, kind_rank, "", ap.name),
    )
    applied = (_admin_selection(ap.subject),)
    for direction, rules in ((Direction.INGRESS, ap.ingress), (Direction.EGRESS, ap.egress)):
        for rule in rules:
            terms: list[Term] = []
            for p in rule.peers:
                terms.extend(_admin_peer(p))
            b.add(
                info,
                direction,
                rule.index,
                rule.name,
                rule.action,
                applied,
                tuple(terms),
                rule.ports,
            )


def _admin_selection(s: AdminSelection) -> PodTerm:
    return PodTerm(namespace_selector=s.namespace_selector, pod_selector=s.pod_selector)


def _admin_peer(p: AdminPeer) -> list[Term]:
    if p.pods is not None:
        term = _admin_selection(p.pods)
        if p.same_labels or p.not_same_labels:
            term = PodTerm(
                namespace_selector=term.namespace_selector,
                pod_selector=term.pod_selector,
                same_labels=p.same_labels,
                not_same_labels=p.not_same_labels,
            )
        return [term]
    if p.node_selector is not None:
        return [NodeTerm(selector=p.node_selector)]
    return [IPTerm(block=IPBlock(cidr=net)) for net in p.networks]


# --- crd.antrea.io ------------------------------------------------------------------------


def _tiers(
    custom: Iterable[Tier], invalid: list[tuple[str, str, str, str, str]] | None = None
) -> dict[str, int]:
    """Tier name -> priority. A Tier that clashes is an error, or (with `invalid`) left
    out and listed there: the first of two clashing Tiers stays."""
    tiers = dict(antrea.BUILTIN_TIERS)
    by_priority = {p: n for n, p in tiers.items()}
    for t in custom:
        ref = f"Tier {t.name}"
        if t.name in antrea.BUILTIN_TIERS:
            continue  # a copy of a static tier, as `kubectl get tiers -o yaml` prints them
        problem = None
        if t.name in tiers:
            problem = f"{ref}: defined twice"
        elif t.priority in by_priority:
            problem = (
                f"{ref}: spec.priority: {t.priority} overlaps with existing Tier "
                f"{by_priority[t.priority]}"
            )
        if problem is not None:
            if invalid is None:
                raise ValidationError(None, "", problem)
            invalid.append((f"{antrea.GROUP}/v1beta1", "Tier", "", t.name, problem))
            continue
        tiers[t.name] = t.priority
        by_priority[t.priority] = t.name
    return tiers


class _Groups:
    """Resolves ClusterGroup/Group references into terms."""

    def __init__(
        self, groups: Iterable[AntreaGroup], services: Iterable[Service], warnings: list[str]
    ) -> None:
        self._by_key: Mapping[tuple[str, str], AntreaGroup] = {
            (g.namespace, g.name): g for g in groups
        }
        self._services = {s.key: s for s in services}
        self._warnings = warnings

    def terms(self, namespace: str, name: str, referrer: str) -> list[Term]:
        return self._terms(namespace, name, referrer, depth=0)

    def _terms(self, namespace: str, name: str, referrer: str, depth: int) -> list[Term]:
        g = self._by_key.get((namespace, name))
        what = f"Group {namespace}/{name}" if namespace else f"ClusterGroup {name}"
        if g is None:
            self._warnings.append(f"{referrer}: {what} does not exist; it selects nothing")
            return []
        if depth > 1:
            raise ValidationError(g.ref, "spec.childGroups", "nesting is one level only")
        out: list[Term] = []
        if g.pod_selector is not None or g.namespace_selector is not None:
            if g.namespace_selector is None and namespace:
                out.append(PodTerm(namespaces=frozenset({namespace}), pod_selector=g.pod_selector))
            else:
                out.append(
                    PodTerm(namespace_selector=g.namespace_selector, pod_selector=g.pod_selector)
                )
        out.extend(IPTerm(block=blk) for blk in g.ip_blocks)
        for child in g.child_groups:
            out.extend(self._terms(namespace, child, referrer, depth + 1))
        if g.service_reference:
            out.extend(self._service_pods(what, g.service_reference))
        return out

    def _service_pods(self, what: str, key: str) -> list[Term]:
        """The pods a Service's selector picks, in its namespace (as Antrea groups a
        serviceReference: no Service port is implied)."""
        svc = self._services.get(key)
        if svc is None:
            self._warnings.append(
                f"{what}: serviceReference {key}: no such Service; it selects nothing"
            )
            return []
        if svc.selector is None:
            self._warnings.append(
                f"{what}: serviceReference {key}: the Service has no selector; "
                "it selects nothing"
            )
            return []
        return [PodTerm(namespaces=frozenset({svc.namespace}), pod_selector=svc.selector)]


def _antrea_policy(
    b: _Builder, pol: AntreaPolicy, tiers: Mapping[str, int], groups: _Groups
) -> None:
    tier_prio = tiers.get(pol.tier)
    if tier_prio is None:
        raise ValidationError(pol.ref, "spec.tier", f"tier {pol.tier!r} does not exist")
    baseline = tier_prio == BASELINE_TIER_PRIORITY
    layer = Layer.ANTREA_BASELINE if baseline else Layer.ADMIN
    info = PolicyInfo(
        kind=pol.kind,
        api_version=f"{antrea.GROUP}/v1beta1",
        namespace=pol.namespace,
        name=pol.name,
        tier=pol.tier,
        layer=layer,
        priority=pol.priority,
        order=(layer, tier_prio, pol.priority, 0, pol.namespace, pol.name),
    )
    referrer = str(pol.ref)
    policy_applied = None
    if pol.applied_to is not None:
        policy_applied = _antrea_applied(pol, pol.applied_to, groups, referrer, b.warnings)
    for direction, rules in ((Direction.INGRESS, pol.ingress), (Direction.EGRESS, pol.egress)):
        for rule in rules:
            applied = policy_applied
            if rule.applied_to is not None:
                applied = _antrea_applied(pol, rule.applied_to, groups, referrer, b.warnings)
            assert applied is not None  # validated: appliedTo in spec or in every rule
            peers = None
            if rule.peers is not None:
                peers = tuple(
                    t
                    for p in rule.peers
                    for t in _antrea_peer(pol, p, groups, referrer, b.warnings)
                )
            for ps in rule.ports or ():
                if not ps.source_covers_clients() and not ps.source_misses_clients():
                    b.warnings.append(
                        f"{referrer}: {direction.value} rule {rule.index}: port {ps}: the "
                        f"source ports hold only some of the client ports "
                        f"{EPHEMERAL_PORTS[0]}-{EPHEMERAL_PORTS[1]}; a connection matches "
                        "by the port it happens to get, and here it matches none"
                    )
            b.add(
                info,
                direction,
                rule.index,
                rule.name,
                rule.action,
                applied,
                peers,
                rule.ports,
                logged=rule.enable_logging,
                log_label=rule.log_label,
            )


def _antrea_applied(
    pol: AntreaPolicy,
    entries: Sequence[AntreaPeer],
    groups: _Groups,
    referrer: str,
    warnings: list[str],
) -> tuple[PodTerm, ...]:
    out: list[PodTerm] = []
    for p in entries:
        for t in _antrea_peer(pol, p, groups, referrer, warnings):
            if isinstance(t, PodTerm):
                out.append(t)
            else:
                warnings.append(
                    f"{referrer}: appliedTo selects IPs or Nodes, which "
                    "protect no pod here; ignored"
                )
    return tuple(out)


def _antrea_peer(
    pol: AntreaPolicy, p: AntreaPeer, groups: _Groups, referrer: str, warnings: list[str]
) -> list[Term]:
    ns_scoped = pol.kind == antrea.ANNP
    own = frozenset({pol.namespace}) if ns_scoped else None
    if p.group:
        return groups.terms(pol.namespace, p.group, referrer)
    if p.ip_block is not None:
        return [IPTerm(block=p.ip_block)]
    if p.node_selector is not None:
        return [NodeTerm(selector=p.node_selector)]
    if p.service_account is not None:
        sa_ns = p.service_account[0] or pol.namespace
        return [
            PodTerm(namespaces=frozenset({sa_ns}), service_account=(sa_ns, p.service_account[1]))
        ]
    if p.fqdn:
        warnings.append(
            f"{referrer}: fqdn {p.fqdn!r} cannot be resolved offline; it matches "
            "no pod or IP here"
        )
        return []
    if p.namespaces_self or p.same_labels:
        return [
            PodTerm(
                pod_selector=p.pod_selector,
                same_namespace=p.namespaces_self,
                same_labels=p.same_labels,
            )
        ]
    if p.namespace_selector is not None:
        return [PodTerm(namespace_selector=p.namespace_selector, pod_selector=p.pod_selector)]
    if p.pod_selector is not None:
        # A podSelector alone: every namespace in a cluster policy, its own in a namespaced one.
        return [PodTerm(namespaces=own, pod_selector=p.pod_selector)]
    if p.empty:
        # An entry with nothing set (`{}`): Antrea makes it a group of no selector in the
        # policy's namespace, which is every pod there for a namespaced policy and
        # nothing for a cluster one.
        if ns_scoped:
            return [PodTerm(namespaces=own)]
        warnings.append(f"{referrer}: an entry with no selector selects nothing here")
    return []
