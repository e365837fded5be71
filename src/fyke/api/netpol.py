"""networking.k8s.io/v1 NetworkPolicy, with the API server's defaults and validation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fyke.api.core import (
    Direction,
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

KIND = "NetworkPolicy"
API_VERSION = "networking.k8s.io/v1"


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkPolicyPeer:
    """podSelector and namespaceSelector in one peer are ANDed; ipBlock stands alone."""

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkPolicyRule:
    index: int
    # None: `from`/`to` missing or empty, which matches every peer.
    peers: tuple[NetworkPolicyPeer, ...] | None
    # None: `ports` missing or empty, which matches every port and protocol.
    ports: tuple[PortSpec, ...] | None


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkPolicy:
    ref: ObjectRef
    namespace: str
    name: str
    pod_selector: LabelSelector
    policy_types: frozenset[Direction]
    ingress: tuple[NetworkPolicyRule, ...]
    egress: tuple[NetworkPolicyRule, ...]


def parse_network_policy(doc: Mapping[str, Any]) -> NetworkPolicy:
    r, name, ns = read_meta(KIND, doc, namespaced=True)
    spec = r.mapping(doc.get("spec"), "spec")
    pod_selector = parse_selector(r, spec.get("podSelector"), "spec.podSelector")
    ingress = tuple(
        _rule(r, raw, f"spec.ingress[{i}]", i, "from")
        for i, raw in enumerate(r.items(spec.get("ingress"), "spec.ingress"))
    )
    egress = tuple(
        _rule(r, raw, f"spec.egress[{i}]", i, "to")
        for i, raw in enumerate(r.items(spec.get("egress"), "spec.egress"))
    )
    raw_types = r.items(spec.get("policyTypes"), "spec.policyTypes")
    types: set[Direction] = set()
    for i, t in enumerate(raw_types):
        try:
            types.add(Direction(t))
        except ValueError:
            raise r.fail(
                f"spec.policyTypes[{i}]", f"unsupported value {t!r}: must be Ingress or Egress"
            ) from None
    if not raw_types:
        # Defaulting as the API server does: Ingress always, Egress when rules exist.
        types.add(Direction.INGRESS)
        if spec.get("egress"):
            types.add(Direction.EGRESS)
    return NetworkPolicy(
        ref=r.ref,
        namespace=ns,
        name=name,
        pod_selector=pod_selector,
        policy_types=frozenset(types),
        ingress=ingress,
        egress=egress,
    )


def _rule(r: Reader, raw: Any, path: str, index: int, peer_key: str) -> NetworkPolicyRule:
    m = r.mapping(raw, path)
    peers = [
        _peer(r, p, f"{path}.{peer_key}[{i}]")
        for i, p in enumerate(r.items(m.get(peer_key), f"{path}.{peer_key}"))
    ]
    ports = [
        _port(r, p, f"{path}.ports[{i}]")
        for i, p in enumerate(r.items(m.get("ports"), f"{path}.ports"))
    ]
    return NetworkPolicyRule(index=index, peers=tuple(peers) or None, ports=tuple(ports) or None)


def _peer(r: Reader, raw: Any, path: str) -> NetworkPolicyPeer:
    m = r.mapping(raw, path)
    pod = m.get("podSelector")
    nsel = m.get("namespaceSelector")
    block = m.get("ipBlock")
    if pod is None and nsel is None and block is None:
        raise r.fail(path, "must specify a peer: podSelector, namespaceSelector or ipBlock")
    if block is not None and (pod is not None or nsel is not None):
        raise r.fail(path, "may not specify both ipBlock and another peer")
    return NetworkPolicyPeer(
        pod_selector=None if pod is None else parse_selector(r, pod, f"{path}.podSelector"),
        namespace_selector=None
        if nsel is None
        else parse_selector(r, nsel, f"{path}.namespaceSelector"),
        ip_block=None if block is None else parse_ip_block(r, block, f"{path}.ipBlock"),
    )


def _port(r: Reader, raw: Any, path: str) -> PortSpec:
    m = r.mapping(raw, path)
    proto = parse_protocol(r, m.get("protocol"), f"{path}.protocol")
    number, named = parse_port_number(r, m, "port", path)
    end = r.integer(m, "endPort", path)
    if end is not None:
        if named:
            raise r.fail(f"{path}.endPort", "may not be specified when port is a named port")
        if number is None:
            raise r.fail(f"{path}.endPort", "may not be specified when port is not specified")
        if end < number:
            raise r.fail(f"{path}.endPort", f"must be >= port ({number})")
        if end > 65535:
            raise r.fail(f"{path}.endPort", f"must be between 1 and 65535, inclusive, got {end}")
    if number is None:
        return PortSpec(protocol=proto, named=named)
    return PortSpec(protocol=proto, start=number, end=end if end is not None else number)
