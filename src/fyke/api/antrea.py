"""crd.antrea.io/v1beta1: ClusterNetworkPolicy, NetworkPolicy, Tier, ClusterGroup, Group,
as Antrea users write them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fyke.api.core import (
    IPBlock,
    PortSpec,
    parse_ip_block,
    parse_port_number,
    parse_protocol,
    read_meta,
)
from fyke.api.errors import ObjectRef
from fyke.api.fields import Reader
from fyke.api.selectors import LabelSelector, parse_selector

GROUP = "crd.antrea.io"
ACNP = "ClusterNetworkPolicy"
ANNP = "NetworkPolicy"
TIER = "Tier"
CLUSTER_GROUP = "ClusterGroup"
NS_GROUP = "Group"
ACTIONS = ("Allow", "Drop", "Reject", "Pass")

# Static tiers Antrea creates; lower priority value is evaluated first.
BUILTIN_TIERS: Mapping[str, int] = {
    "emergency": 50,
    "securityops": 100,
    "networkops": 150,
    "platform": 200,
    "application": 250,
    "baseline": 253,
}
DEFAULT_TIER = "application"
# Capitalised built-in names from older Antrea releases are still accepted.
LEGACY_TIER_NAMES = frozenset(
    {"Emergency", "SecurityOps", "NetworkOps", "Platform", "Application", "Baseline"}
)
# Tier priorities Antrea keeps for itself: ANP 251, BANP/CNP Baseline 254, CNP Admin 220.
RESERVED_TIER_PRIORITIES = frozenset({220, 251, 252, 254, 255})
BASELINE_TIER_PRIORITY = 253


@dataclass(frozen=True, slots=True, kw_only=True)
class Tier:
    name: str
    priority: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AntreaPeer:
    """One entry of appliedTo, from or to. Selectors in one entry are ANDed."""

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    namespaces_self: bool = False
    same_labels: tuple[str, ...] = ()
    ip_block: IPBlock | None = None
    group: str = ""
    node_selector: LabelSelector | None = None
    service_account: tuple[str, str] | None = None  # (namespace, name)
    fqdn: str = ""
    empty: bool = False  # `{}`: nothing set at all


@dataclass(frozen=True, slots=True, kw_only=True)
class AntreaRule:
    index: int
    name: str
    action: str
    peers: tuple[AntreaPeer, ...] | None  # None: every peer
    ports: tuple[PortSpec, ...] | None  # None: every port of every protocol
    applied_to: tuple[AntreaPeer, ...] | None  # rule-level appliedTo
    enable_logging: bool = False  # audit-log every connection the rule decides
    log_label: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AntreaPolicy:
    ref: ObjectRef
    kind: str
    namespace: str  # "" for ClusterNetworkPolicy
    name: str
    priority: float
    tier: str  # lower-cased tier name
    applied_to: tuple[AntreaPeer, ...] | None
    ingress: tuple[AntreaRule, ...]
    egress: tuple[AntreaRule, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class AntreaGroup:
    ref: ObjectRef
    kind: str
    namespace: str  # "" for ClusterGroup
    name: str
    pod_selector: LabelSelector | None
    namespace_selector: LabelSelector | None
    ip_blocks: tuple[IPBlock, ...]
    child_groups: tuple[str, ...]
    service_reference: str  # ns/name of a Service: the pods its selector picks


def parse_tier(doc: Mapping[str, Any]) -> Tier:
    r, name, _ = read_meta(TIER, doc, namespaced=False)
    spec = r.mapping(doc.get("spec"), "spec")
    prio = r.integer(spec, "priority", "spec", lo=0, hi=255, required=True)
    assert prio is not None
    if prio in RESERVED_TIER_PRIORITIES:
        raise r.fail("spec.priority", f"priority {prio} is reserved")
    return Tier(name=name, priority=prio)


def parse_policy(doc: Mapping[str, Any], kind: str) -> AntreaPolicy:
    namespaced = kind == ANNP
    r, name, ns = read_meta(kind, doc, namespaced=namespaced)
    spec = r.mapping(doc.get("spec"), "spec")
    if spec.get("priority") is None:
        raise r.fail("spec.priority", "required value")
    priority = r.number(spec, "priority", "spec", lo=1, hi=10000, required=True)
    assert priority is not None
    tier = r.string(spec, "tier", "spec") or DEFAULT_TIER
    if tier in LEGACY_TIER_NAMES:
        tier = tier.lower()
    applied = _peers(r, spec.get("appliedTo"), "spec.appliedTo", namespaced, applied_to=True)
    rules: dict[str, tuple[AntreaRule, ...]] = {}
    for key, peer_key in (("ingress", "from"), ("egress", "to")):
        rules[key] = tuple(
            _rule(r, raw, f"spec.{key}[{i}]", i, key, peer_key, namespaced)
            for i, raw in enumerate(r.items(spec.get(key), f"spec.{key}"))
        )
    all_rules = rules["ingress"] + rules["egress"]
    names: dict[str, str] = {}
    for key in ("ingress", "egress"):
        for x in rules[key]:
            where = f"spec.{key}[{x.index}].name"
            if x.name in names:
                raise r.fail(where, f"duplicate rule name {x.name!r} (also {names[x.name]})")
            names[x.name] = where
            if x.action == "Pass" and tier == "baseline":
                raise r.fail(
                    f"spec.{key}[{x.index}].action", "Pass is not allowed in the " "baseline tier"
                )
    if applied is not None and any(x.applied_to is not None for x in all_rules):
        raise r.fail("spec.appliedTo", "appliedTo may not be set in both spec and rules")
    if applied is None:
        for key in ("ingress", "egress"):
            for x in rules[key]:
                if x.applied_to is None:
                    raise r.fail(
                        f"spec.{key}[{x.index}].appliedTo",
                        "appliedTo must be set in spec or in every rule",
                    )
    return AntreaPolicy(
        ref=r.ref,
        kind=kind,
        namespace=ns,
        name=name,
        priority=priority,
        tier=tier,
        applied_to=applied,
        ingress=rules["ingress"],
        egress=rules["egress"],
    )


def _rule(
    r: Reader, raw: Any, path: str, index: int, direction: str, peer_key: str, namespaced: bool
) -> AntreaRule:
    m = r.mapping(raw, path)
    action = r.one_of(r.string(m, "action", path, required=True), f"{path}.action", ACTIONS)
    name = r.string(m, "name", path) or _default_rule_name(direction, action, index, m)
    peers = _peers(r, m.get(peer_key), f"{path}.{peer_key}", namespaced, applied_to=False)
    ports: list[PortSpec] = []
    for i, p in enumerate(r.items(m.get("ports"), f"{path}.ports")):
        ports.append(_port(r, p, f"{path}.ports[{i}]"))
    other = r.items(m.get("protocols"), f"{path}.protocols")
    if peers is None and m.get("toServices"):
        # Service-bound egress cannot be resolved offline: it matches no pod or IP here.
        peers = ()
    # ICMP/IGMP entries in `protocols` never match TCP, UDP or SCTP.
    port_specs = tuple(ports) if ports or other else None
    rule_applied = _peers(r, m.get("appliedTo"), f"{path}.appliedTo", namespaced, applied_to=True)
    logging = m.get("enableLogging", False)
    if not isinstance(logging, bool):
        raise r.fail(f"{path}.enableLogging", f"must be true or false, not {logging!r}")
    return AntreaRule(
        enable_logging=logging,
        log_label=r.string(m, "logLabel", path),
        index=index,
        name=name,
        action=action,
        peers=peers,
        ports=port_specs,
        applied_to=rule_applied,
    )


def _default_rule_name(direction: str, action: str, index: int, rule: Mapping[str, Any]) -> str:
    """Named as Antrea's mutating webhook names unnamed rules (direction, action, short
    digest); the position is in the digest so that identical rules get distinct names."""
    digest = hashlib.sha1(
        json.dumps([index, rule], sort_keys=True, default=str).encode(), usedforsecurity=False
    ).hexdigest()
    return f"{direction}-{action.lower()}-{digest[:7]}"


def _range_end(
    r: Reader,
    m: Mapping[str, Any],
    path: str,
    key: str,
    start: int | None,
    start_key: str,
    needs: str,
) -> int | None:
    """The end of a port range (`endPort`, `sourceEndPort`): it needs its start, at or
    below it."""
    end = r.integer(m, key, path, lo=1, hi=65535)
    if end is not None:
        if start is None:
            raise r.fail(f"{path}.{key}", f"requires {needs}")
        if end < start:
            raise r.fail(f"{path}.{key}", f"must be >= {start_key} ({start})")
    return end


def _port(r: Reader, raw: Any, path: str) -> PortSpec:
    m = r.mapping(raw, path)
    proto = parse_protocol(r, m.get("protocol"), f"{path}.protocol")
    number, named = parse_port_number(r, m, "port", path)
    end = _range_end(r, m, path, "endPort", number, "port", "a numeric port")
    src = r.integer(m, "sourcePort", path, lo=1, hi=65535)
    src_end = _range_end(r, m, path, "sourceEndPort", src, "sourcePort", "sourcePort")
    if src is not None:
        src_end = src_end if src_end is not None else src
    if number is None:
        return PortSpec(protocol=proto, named=named, src_start=src, src_end=src_end)
    return PortSpec(
        protocol=proto,
        start=number,
        end=end if end is not None else number,
        src_start=src,
        src_end=src_end,
    )


def _peers(
    r: Reader, raw: Any, path: str, namespaced: bool, *, applied_to: bool
) -> tuple[AntreaPeer, ...] | None:
    items = r.items(raw, path)
    if not items:
        return None
    return tuple(_peer(r, p, f"{path}[{i}]", namespaced, applied_to) for i, p in enumerate(items))


def _peer(r: Reader, raw: Any, path: str, namespaced: bool, applied_to: bool) -> AntreaPeer:
    m = r.mapping(raw, path)
    known = {
        "podSelector",
        "namespaceSelector",
        "namespaces",
        "ipBlock",
        "group",
        "nodeSelector",
        "serviceAccount",
        "fqdn",
        "scope",
        "externalEntitySelector",
        "service",
    }
    for k in m:
        if k not in known:
            raise r.fail(f"{path}.{k}", "unknown field")
    pod = m.get("podSelector")
    nsel = m.get("namespaceSelector")
    nss = m.get("namespaces")
    block = m.get("ipBlock")
    group = m.get("group")
    # An entry with nothing set is accepted, as Antrea accepts it: in an Antrea
    # NetworkPolicy it selects every pod of the policy's namespace, in a cluster policy
    # nothing (Antrea's group of no selector in no namespace). See compile._antrea_peer.
    if nsel is not None and nss is not None:
        raise r.fail(path, "namespaces and namespaceSelector may not be set together")
    if block is not None and any(x is not None for x in (pod, nsel, nss, group)):
        raise r.fail(f"{path}.ipBlock", "may not be set with a selector or group")
    if group is not None and any(x is not None for x in (pod, nsel, nss)):
        raise r.fail(f"{path}.group", "may not be set with a selector")
    self_match = False
    same: tuple[str, ...] = ()
    if nss is not None:
        if namespaced:
            raise r.fail(f"{path}.namespaces", "is only supported in ClusterNetworkPolicy")
        if applied_to:
            raise r.fail(f"{path}.namespaces", "is not supported in appliedTo")
        nm = r.mapping(nss, f"{path}.namespaces")
        match = nm.get("match")
        labels = r.items(nm.get("sameLabels"), f"{path}.namespaces.sameLabels")
        if match is not None and labels:
            raise r.fail(f"{path}.namespaces", "match and sameLabels may not be set together")
        if match is not None:
            r.one_of(str(match), f"{path}.namespaces.match", ("Self",))
            self_match = True
        elif labels:
            same = tuple(str(x) for x in labels)
        else:
            raise r.fail(f"{path}.namespaces", "one of match or sameLabels must be set")
    if applied_to and namespaced and nsel is not None:
        raise r.fail(
            f"{path}.namespaceSelector", "is not supported in a NetworkPolicy's " "appliedTo"
        )
    sa = m.get("serviceAccount")
    service_account = None
    if sa is not None:
        sm = r.mapping(sa, f"{path}.serviceAccount")
        service_account = (
            r.string(sm, "namespace", f"{path}.serviceAccount", required=not namespaced),
            r.string(sm, "name", f"{path}.serviceAccount", required=True),
        )
    if group is not None and not isinstance(group, str):
        raise r.fail(f"{path}.group", f"must be a string, got {group!r}")
    return AntreaPeer(
        pod_selector=None if pod is None else parse_selector(r, pod, f"{path}.podSelector"),
        namespace_selector=None
        if nsel is None
        else parse_selector(r, nsel, f"{path}.namespaceSelector"),
        namespaces_self=self_match,
        same_labels=same,
        ip_block=None if block is None else parse_ip_block(r, block, f"{path}.ipBlock"),
        group=group or "",
        node_selector=None
        if m.get("nodeSelector") is None
        else parse_selector(r, m["nodeSelector"], f"{path}.nodeSelector"),
        service_account=service_account,
        fqdn=str(m.get("fqdn") or ""),
        empty=not any(m.get(k) is not None for k in known),
    )


def parse_group(doc: Mapping[str, Any], kind: str) -> AntreaGroup:
    namespaced = kind == NS_GROUP
    r, name, ns = read_meta(kind, doc, namespaced=namespaced)
    spec = r.mapping(doc.get("spec"), "spec")
    pod = spec.get("podSelector")
    nsel = spec.get("namespaceSelector")
    blocks = list(r.items(spec.get("ipBlocks"), "spec.ipBlocks"))
    block_path = "spec.ipBlocks"
    if spec.get("ipBlock") is not None:
        blocks.append(spec["ipBlock"])
        block_path = "spec.ipBlock"
    children = r.items(spec.get("childGroups"), "spec.childGroups")
    svc = spec.get("serviceReference")
    kinds = [
        k
        for k, v in (
            ("selectors", pod is not None or nsel is not None),
            ("ipBlocks", bool(blocks)),
            ("childGroups", bool(children)),
            ("serviceReference", svc is not None),
        )
        if v
    ]
    if len(kinds) > 1:
        raise r.fail(
            "spec",
            f"only one of selectors, ipBlocks, childGroups, serviceReference "
            f"may be set, got {' and '.join(kinds)}",
        )
    svc_ref = ""
    if svc is not None:
        sm = r.mapping(svc, "spec.serviceReference")
        svc_name = r.string(sm, "name", "spec.serviceReference", required=True)
        # A Group's Service is in its own namespace unless named; a ClusterGroup's must
        # name one (without, it refers to no Service).
        svc_ns = r.string(sm, "namespace", "spec.serviceReference") or ns or ""
        svc_ref = f"{svc_ns}/{svc_name}"
    for i, c in enumerate(children):
        if not isinstance(c, str) or not c:
            raise r.fail(f"spec.childGroups[{i}]", f"must be a group name, got {c!r}")
    return AntreaGroup(
        ref=r.ref,
        kind=kind,
        namespace=ns,
        name=name,
        pod_selector=None if pod is None else parse_selector(r, pod, "spec.podSelector"),
        namespace_selector=None
        if nsel is None
        else parse_selector(r, nsel, "spec.namespaceSelector"),
        ip_blocks=tuple(parse_ip_block(r, b, f"{block_path}[{i}]") for i, b in enumerate(blocks)),
        child_groups=tuple(children),
        service_reference=svc_ref,
    )
