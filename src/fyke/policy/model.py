"""The internal policy model every supported kind compiles into.

A Rule belongs to one direction, protects the pods its `applied_to` terms select, and
matches a connection by peer and destination port. Rules carry a total order; the
evaluator walks them by layer (see Layer) and stops at the first that decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

from fyke.api.core import Direction, IPBlock, PortSpec
from fyke.api.selectors import LabelSelector


class Action(StrEnum):
    ALLOW = "allow"
    DROP = "drop"
    REJECT = "reject"
    PASS = "pass"


class Layer(IntEnum):
    """Evaluation layers, first to last. Pass jumps from ADMIN to NETWORK_POLICY and from
    ANTREA_BASELINE to BASELINE. NETWORK_POLICY ends with default isolation."""

    ADMIN = 0  # Antrea non-baseline tiers, CNP Admin tier (220), AdminNetworkPolicy
    NETWORK_POLICY = 1  # networking.k8s.io NetworkPolicy
    ANTREA_BASELINE = 2  # Antrea Baseline tier
    BASELINE = 3  # ClusterNetworkPolicy Baseline tier, BaselineAdminNetworkPolicy


PASS_TARGET: dict[Layer, int] = {
    Layer.ADMIN: Layer.NETWORK_POLICY,
    Layer.NETWORK_POLICY: Layer.ANTREA_BASELINE,
    Layer.ANTREA_BASELINE: Layer.BASELINE,
    Layer.BASELINE: Layer.BASELINE + 1,
}

# Inherent tier priority of the v1alpha2 ClusterNetworkPolicy Admin tier among Antrea tiers.
CNP_ADMIN_TIER_PRIORITY = 220
# AdminNetworkPolicies come after every non-baseline Antrea tier, application (250) included.
ANP_TIER_PRIORITY = 251
# Antrea's baseline tier.
BASELINE_TIER_PRIORITY = 253
BANP_TIER_PRIORITY = 254
# BANP and Baseline-tier ClusterNetworkPolicies share one tier (254); the BANP sorts as
# priority 1 among the ClusterNetworkPolicies' spec.priority.
BANP_POLICY_PRIORITY = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyInfo:
    kind: str
    api_version: str
    namespace: str
    name: str
    tier: str
    layer: Layer
    priority: float | None
    # (layer, tier priority, policy priority, kind rank, namespace, name)
    order: tuple[Any, ...]

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "apiVersion": self.api_version,
            "namespace": self.namespace or None,
            "name": self.name,
            "tier": self.tier,
        }
        if self.priority is not None:
            out["priority"] = int(self.priority) if self.priority.is_integer() else self.priority
        return out

    def __str__(self) -> str:
        # Two ClusterNetworkPolicy and two NetworkPolicy kinds exist; say whose.
        owner = "Antrea " if self.api_version.startswith("crd.antrea.io/") else ""
        return f"{owner}{self.kind} {self.ref}"


@dataclass(frozen=True, slots=True, kw_only=True)
class PodTerm:
    """Selects pods. Every set field must hold (AND).

    namespaces: fixed namespace names (None: any); namespace_selector on namespace labels;
    pod_selector on pod labels (None: every pod). same_namespace / same_labels /
    not_same_labels relate the peer's namespace to the protected pod's namespace.
    """

    namespaces: frozenset[str] | None = None
    namespace_selector: LabelSelector | None = None
    pod_selector: LabelSelector | None = None
    service_account: tuple[str, str] | None = None
    same_namespace: bool = False
    same_labels: tuple[str, ...] = ()
    not_same_labels: tuple[str, ...] = ()

    @property
    def relative(self) -> bool:
        return self.same_namespace or bool(self.same_labels) or bool(self.not_same_labels)


@dataclass(frozen=True, slots=True, kw_only=True)
class IPTerm:
    block: IPBlock


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeTerm:
    selector: LabelSelector


Term = PodTerm | IPTerm | NodeTerm


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    id: int
    policy: PolicyInfo
    direction: Direction
    index: int
    name: str
    action: Action
    action_text: str  # as written in the policy
    applied_to: tuple[PodTerm, ...]
    peers: tuple[Term, ...] | None  # None: every peer, inside or outside the cluster
    ports: tuple[PortSpec, ...] | None  # None: every port of every protocol
    logged: bool = False  # enableLogging: the datapath reports each decided connection
    log_label: str = ""

    # Derived: whether any port is named (resolved per destination pod); a hot question.
    has_named_ports: bool = field(default=False, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        named = self.ports is not None and any(p.named for p in self.ports)
        object.__setattr__(self, "has_named_ports", named)

    @property
    def order(self) -> tuple[Any, ...]:
        # As Antrea computes flow priorities: rule i of every policy of one priority comes
        # before rule i+1 of any of them. Name only breaks ties deterministically.
        o = self.policy.order
        return (*o[:3], self.index, *o[3:])

    def to_json(self) -> dict[str, Any]:
        return {
            "direction": self.direction.value,
            "index": self.index,
            "name": self.name or None,
            "action": self.action_text,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Isolation:
    """A K8s NetworkPolicy isolates the pods it selects in each of its policyTypes.
    logged: its namespace asks for NetworkPolicy logging (the isolation drops are logged)."""

    policy: PolicyInfo
    direction: Direction
    applied_to: tuple[PodTerm, ...]
    logged: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CompiledPolicies:
    rules: tuple[Rule, ...]
    isolations: tuple[Isolation, ...]
    warnings: tuple[str, ...] = ()
    # Objects left out by a lenient compile: (apiVersion, kind, namespace, name, why).
    invalid: tuple[tuple[str, str, str, str, str], ...] = ()
