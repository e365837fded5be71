"""policy.networking.k8s.io: AdminNetworkPolicy and BaselineAdminNetworkPolicy (v1alpha1),
ClusterNetworkPolicy (v1alpha2). One typed shape serves all three: a subject, ordered rules
with an action, peers and ports."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from fyke.api.core import PortSpec, Protocol, parse_protocol, read_meta
from fyke.api.errors import ObjectRef
from fyke.api.fields import IPNetwork, Reader
from fyke.api.selectors import LabelSelector, parse_selector

GROUP = "policy.networking.k8s.io"
ANP = "AdminNetworkPolicy"
BANP = "BaselineAdminNetworkPolicy"
CNP = "ClusterNetworkPolicy"
MAX_RULES = 100
MAX_CNP_ITEMS = 25


class AdminTier(StrEnum):
    ADMIN = "Admin"
    BASELINE = "Baseline"


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminSelection:
    """`namespaces: SEL` (pod_selector None: every pod there) or `pods: {ns, pod}`."""

    namespace_selector: LabelSelector
    pod_selector: LabelSelector | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminPeer:
    pods: AdminSelection | None = None
    node_selector: LabelSelector | None = None
    networks: tuple[IPNetwork, ...] = ()
    # Older v1alpha1 `namespaces: {sameLabels: [...]}` / `notSameLabels`.
    same_labels: tuple[str, ...] = ()
    not_same_labels: tuple[str, ...] = ()
    domain_names: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminRule:
    index: int
    name: str
    action: str  # as written: Allow/Accept, Deny, Pass
    peers: tuple[AdminPeer, ...]
    ports: tuple[PortSpec, ...] | None  # None: every port


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminPolicy:
    ref: ObjectRef
    kind: str
    api_version: str
    name: str
    tier: AdminTier
    priority: int  # BANP: 0 (a singleton)
    subject: AdminSelection
    ingress: tuple[AdminRule, ...]
    egress: tuple[AdminRule, ...]


def parse_admin_policy(doc: Mapping[str, Any], kind: str, version: str) -> AdminPolicy:
    r, name, _ = read_meta(kind, doc, namespaced=False)
    spec = r.mapping(doc.get("spec"), "spec")
    if kind == BANP:
        tier = AdminTier.BASELINE
        if name != "default":
            raise r.fail(
                "metadata.name",
                "only one BaselineAdminNetworkPolicy is allowed, " "and it must be named 'default'",
            )
        priority = 0
        actions: tuple[str, ...] = ("Allow", "Deny")
    elif kind == ANP:
        tier = AdminTier.ADMIN
        prio = r.integer(spec, "priority", "spec", lo=0, hi=1000, required=True)
        assert prio is not None
        priority = prio
        actions = ("Allow", "Deny", "Pass")
    else:
        tier_text = r.string(spec, "tier", "spec", required=True)
        tier = AdminTier(r.one_of(tier_text, "spec.tier", ("Admin", "Baseline")))
        prio = r.integer(spec, "priority", "spec", lo=0, hi=1000, required=True)
        assert prio is not None
        priority = prio
        # Pass is valid in both tiers; in Baseline it leaves the decision to the default.
        actions = ("Accept", "Deny", "Pass")
    if spec.get("subject") is None:
        raise r.fail("spec.subject", "required value")
    cnp = kind == CNP
    subject = _selection(r, spec.get("subject"), "spec.subject", peer=False, cnp=cnp)
    assert subject.pods is not None
    limit = MAX_CNP_ITEMS if cnp else MAX_RULES
    rules: dict[str, tuple[AdminRule, ...]] = {}
    for key, peer_key in (("ingress", "from"), ("egress", "to")):
        raw = r.items(spec.get(key), f"spec.{key}")
        if len(raw) > limit:
            raise r.fail(f"spec.{key}", f"must have at most {limit} items")
        rules[key] = tuple(
            _rule(r, x, f"spec.{key}[{i}]", i, peer_key, actions, egress=key == "egress", cnp=cnp)
            for i, x in enumerate(raw)
        )
    return AdminPolicy(
        ref=r.ref,
        kind=kind,
        api_version=f"{GROUP}/{version}",
        name=name,
        tier=tier,
        priority=priority,
        subject=subject.pods,
        ingress=rules["ingress"],
        egress=rules["egress"],
    )


def _rule(
    r: Reader,
    raw: Any,
    path: str,
    index: int,
    peer_key: str,
    actions: tuple[str, ...],
    *,
    egress: bool,
    cnp: bool,
) -> AdminRule:
    m = r.mapping(raw, path)
    name = r.string(m, "name", path)
    if len(name) > 100:
        raise r.fail(f"{path}.name", "must be no more than 100 characters")
    action = r.one_of(r.string(m, "action", path, required=True), f"{path}.action", actions)
    raw_peers = r.items(m.get(peer_key), f"{path}.{peer_key}")
    if not raw_peers:
        raise r.fail(f"{path}.{peer_key}", "required value: at least one peer")
    limit = MAX_CNP_ITEMS if cnp else MAX_RULES
    if len(raw_peers) > limit:
        raise r.fail(f"{path}.{peer_key}", f"must have at most {limit} items")
    peers = tuple(
        _selection(r, p, f"{path}.{peer_key}[{i}]", peer=True, egress=egress, cnp=cnp)
        for i, p in enumerate(raw_peers)
    )
    ports: tuple[PortSpec, ...] | None = None
    if cnp and m.get("ports") is not None:
        raise r.fail(f"{path}.ports", "unknown field in v1alpha2: use protocols")
    if not cnp and m.get("protocols") is not None:
        raise r.fail(f"{path}.protocols", "unknown field in v1alpha1: use ports")
    if cnp and "protocols" in m:
        ports = _protocols(r, m.get("protocols"), f"{path}.protocols")
        named = any(p.named for p in ports)
        addressed = [
            k
            for p in raw_peers
            if isinstance(p, Mapping)
            for k in ("networks", "nodes", "domainNames")
            if k in p
        ]
        if egress and named and addressed:
            # The CRD's (experimental) rule: a named port is a pod's, so it cannot be
            # combined with peers that are addresses or nodes.
            raise r.fail(
                path,
                f"a {addressed[0]} peer cannot be set with destinationNamedPort protocols",
            )
    elif m.get("ports") is not None:
        ports = _ports(r, m.get("ports"), f"{path}.ports")
    return AdminRule(index=index, name=name, action=action, peers=peers, ports=ports)


def _selection(
    r: Reader, raw: Any, path: str, *, peer: bool, egress: bool = False, cnp: bool = False
) -> AdminPeer:
    m = r.mapping(raw, path)
    allowed = ["namespaces", "pods"]
    if peer and egress:
        allowed += ["nodes", "networks"]
        if cnp:
            allowed.append("domainNames")
    present = [k for k in m if m.get(k) is not None]
    for k in present:
        if k not in allowed:
            raise r.fail(f"{path}.{k}", f"unknown field: must be one of {', '.join(allowed)}")
    if len(present) != 1:
        raise r.fail(path, f"exactly one of {', '.join(allowed)} must be set")
    key = present[0]
    if key == "namespaces":
        nm = r.mapping(m["namespaces"], f"{path}.namespaces")
        if peer and any(k in nm for k in ("namespaceSelector", "sameLabels", "notSameLabels")):
            # The earlier v1alpha1 shape of a namespaces peer.
            sel = parse_selector(
                r, nm.get("namespaceSelector"), f"{path}.namespaces.namespaceSelector"
            )
            return AdminPeer(
                pods=AdminSelection(namespace_selector=sel),
                same_labels=_strings(r, nm.get("sameLabels"), f"{path}.namespaces.sameLabels"),
                not_same_labels=_strings(
                    r, nm.get("notSameLabels"), f"{path}.namespaces.notSameLabels"
                ),
            )
        sel = parse_selector(r, nm, f"{path}.namespaces")
        return AdminPeer(pods=AdminSelection(namespace_selector=sel))
    if key == "pods":
        pm = r.mapping(m["pods"], f"{path}.pods")
        nsel_raw = pm.get("namespaceSelector", pm.get("namespaces"))
        if nsel_raw is None and cnp:
            nsel_raw = {}  # optional in v1alpha2: every namespace
        if nsel_raw is None:
            raise r.fail(f"{path}.pods.namespaceSelector", "required value")
        if pm.get("podSelector") is None:
            raise r.fail(f"{path}.pods.podSelector", "required value")
        nsel = nsel_raw
        if isinstance(nsel, Mapping) and "namespaceSelector" in nsel:
            nsel = nsel["namespaceSelector"]  # earlier v1alpha1 nesting
        return AdminPeer(
            pods=AdminSelection(
                namespace_selector=parse_selector(r, nsel, f"{path}.pods.namespaceSelector"),
                pod_selector=parse_selector(r, pm["podSelector"], f"{path}.pods.podSelector"),
            )
        )
    if key == "nodes":
        return AdminPeer(node_selector=parse_selector(r, m["nodes"], f"{path}.nodes"))
    if key == "domainNames":
        # FQDN peers cannot be resolved offline; they match no pod or IP here.
        _strings(r, m["domainNames"], f"{path}.domainNames")
        return AdminPeer(domain_names=True)
    nets = r.items(m["networks"], f"{path}.networks")
    if not nets:
        raise r.fail(f"{path}.networks", "required value: at least one CIDR")
    if len(nets) > 25:
        raise r.fail(f"{path}.networks", "must have at most 25 items")
    return AdminPeer(networks=tuple(r.cidr(n, f"{path}.networks[{i}]") for i, n in enumerate(nets)))


def _strings(r: Reader, raw: Any, path: str) -> tuple[str, ...]:
    out = []
    for i, v in enumerate(r.items(raw, path)):
        if not isinstance(v, str):
            raise r.fail(f"{path}[{i}]", f"must be a string, got {v!r}")
        out.append(v)
    return tuple(out)


def _ports(r: Reader, raw: Any, path: str) -> tuple[PortSpec, ...]:
    """v1alpha1 `ports`: portNumber, namedPort or portRange in each entry."""
    out: list[PortSpec] = []
    items = r.items(raw, path)
    if not items:
        raise r.fail(path, "must have at least 1 item when specified")
    for i, p in enumerate(items):
        ppath = f"{path}[{i}]"
        pm = r.mapping(p, ppath)
        present = [k for k in ("portNumber", "namedPort", "portRange") if pm.get(k) is not None]
        if len(present) != 1:
            raise r.fail(ppath, "exactly one of portNumber, namedPort, portRange must be set")
        key = present[0]
        if key == "namedPort":
            named = pm["namedPort"]
            if not isinstance(named, str) or not named:
                raise r.fail(f"{ppath}.namedPort", f"must be a port name, got {named!r}")
            out.append(PortSpec(protocol=None, named=named))
        elif key == "portNumber":
            nm = r.mapping(pm["portNumber"], f"{ppath}.portNumber")
            proto = parse_protocol(r, nm.get("protocol"), f"{ppath}.portNumber.protocol")
            port = r.integer(nm, "port", f"{ppath}.portNumber", lo=1, hi=65535, required=True)
            out.append(PortSpec(protocol=proto, start=port, end=port))
        else:
            out.append(_range(r, pm["portRange"], f"{ppath}.portRange", None, strict=False))
    return tuple(out)


def _range(r: Reader, raw: Any, path: str, proto: Protocol | None, *, strict: bool) -> PortSpec:
    rm = r.mapping(raw, path)
    if proto is None:
        proto = parse_protocol(r, rm.get("protocol"), f"{path}.protocol")
    start = r.integer(rm, "start", path, lo=1, hi=65535, required=True)
    end = r.integer(rm, "end", path, lo=1, hi=65535, required=True)
    assert start is not None and end is not None
    if end < start or (strict and end == start):
        raise r.fail(f"{path}.end", f"must be {'>' if strict else '>='} start ({start})")
    return PortSpec(protocol=proto, start=start, end=end)


def _protocols(r: Reader, raw: Any, path: str) -> tuple[PortSpec, ...]:
    """v1alpha2 `protocols`: tcp/udp/sctp with an optional destinationPort, or
    destinationNamedPort."""
    out: list[PortSpec] = []
    items = r.items(raw, path)
    if not items:
        raise r.fail(path, "must have at least 1 item when specified")
    for i, p in enumerate(items):
        ppath = f"{path}[{i}]"
        pm = r.mapping(p, ppath)
        keys = ("tcp", "udp", "sctp", "destinationNamedPort")
        present = [k for k in keys if pm.get(k) is not None]
        if len(present) != 1:
            raise r.fail(ppath, f"exactly one of {', '.join(keys)} must be set")
        key = present[0]
        if key == "destinationNamedPort":
            named = pm[key]
            if not isinstance(named, str) or not named:
                raise r.fail(f"{ppath}.{key}", f"must be a port name, got {named!r}")
            out.append(PortSpec(protocol=None, named=named))
            continue
        proto = Protocol(key.upper())
        body = r.mapping(pm[key], f"{ppath}.{key}")
        dest = body.get("destinationPort")
        dpath = f"{ppath}.{key}.destinationPort"
        if dest is None:
            raise r.fail(dpath, "required value")
        dm = r.mapping(dest, dpath)
        if dm.get("range") is not None and dm.get("number") is not None:
            raise r.fail(dpath, "exactly one of number, range must be set")
        if dm.get("range") is not None:
            out.append(_range(r, dm["range"], f"{dpath}.range", proto, strict=True))
        else:
            number = r.integer(dm, "number", dpath, lo=1, hi=65535, required=True)
            out.append(PortSpec(protocol=proto, start=number, end=number))
    return tuple(out)
