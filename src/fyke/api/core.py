"""Core Kubernetes objects the policy model needs: Namespace, Pod, Node, ports, ipBlocks."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from fyke.api.errors import ObjectRef
from fyke.api.fields import IPAddress, IPNetwork, Reader
from fyke.api.selectors import LabelSelector, Operator, Requirement, parse_labels

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


class Protocol(StrEnum):
    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"


PROTOCOLS: tuple[Protocol, ...] = (Protocol.TCP, Protocol.UDP, Protocol.SCTP)


class Direction(StrEnum):
    INGRESS = "Ingress"
    EGRESS = "Egress"


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainerPort:
    name: str
    port: int
    protocol: Protocol


@dataclass(frozen=True, slots=True, kw_only=True)
class Namespace:
    name: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Pod:
    namespace: str
    name: str
    labels: Mapping[str, str]
    node_name: str = ""
    ips: tuple[IPAddress, ...] = ()
    ports: tuple[ContainerPort, ...] = ()
    service_account: str = "default"
    host_network: bool = False

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Node:
    name: str
    labels: Mapping[str, str]
    ips: tuple[IPAddress, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Service:
    """What policies read of a Service: the pods its selector picks (Antrea's group
    `serviceReference` groups them). `selector` None: a Service without one."""

    namespace: str
    name: str
    selector: LabelSelector | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True, kw_only=True)
class IPBlock:
    cidr: IPNetwork
    excepts: tuple[IPNetwork, ...] = ()

    def contains(self, ip: IPAddress) -> bool:
        if ip.version != self.cidr.version or ip not in self.cidr:
            return False
        return not any(ip.version == e.version and ip in e for e in self.excepts)

    def __str__(self) -> str:
        if self.excepts:
            return f"{self.cidr} except {', '.join(map(str, self.excepts))}"
        return str(self.cidr)


@dataclass(frozen=True, slots=True, kw_only=True)
class PortSpec:
    """Destination ports a rule matches.

    `named` is resolved on the destination pod. `protocol` None (only with `named`) means
    the named port may be of any protocol. `start`/`end` both None means every port.
    """

    protocol: Protocol | None
    start: int | None = None
    end: int | None = None
    named: str = ""
    # Antrea's sourcePort/sourceEndPort: the client's port must be in [src_start..src_end].
    src_start: int | None = None
    src_end: int | None = None

    def __str__(self) -> str:
        proto = self.protocol.value if self.protocol else "any"
        if self.named:
            text = f"{self.named}/{proto}"
        elif self.start is None:
            text = f"all/{proto}"
        elif self.end is not None and self.end != self.start:
            text = f"{self.start}-{self.end}/{proto}"
        else:
            text = f"{self.start}/{proto}"
        if self.src_start is not None:
            end = self.src_end if self.src_end is not None else self.src_start
            src = str(self.src_start) if end == self.src_start else f"{self.src_start}-{end}"
            text += f" from port {src}"
        return text

    def source_covers_clients(self) -> bool:
        """Whether every client port a connection can come from (Linux's ephemeral range,
        EPHEMERAL_PORTS) is in the source range; no source range covers everything."""
        if self.src_start is None:
            return True
        end = self.src_end if self.src_end is not None else self.src_start
        return self.src_start <= EPHEMERAL_PORTS[0] and EPHEMERAL_PORTS[1] <= end

    def source_misses_clients(self) -> bool:
        """Whether no client port can be in the source range."""
        if self.src_start is None:
            return False
        end = self.src_end if self.src_end is not None else self.src_start
        return end < EPHEMERAL_PORTS[0] or EPHEMERAL_PORTS[1] < self.src_start


# The ports a client's connection comes from: Linux's default net.ipv4.ip_local_port_range,
# what the lab's pods (and the Kubernetes and Antrea e2e probes) use. Offline, a rule with
# a source port range matches a connection when the range holds all of them.
EPHEMERAL_PORTS = (32768, 60999)


@dataclass(frozen=True, slots=True, kw_only=True)
class Meta:
    ref: ObjectRef
    labels: Mapping[str, str] = field(default_factory=dict)


def read_meta(kind: str, doc: Mapping[str, Any], *, namespaced: bool) -> tuple[Reader, str, str]:
    """Name and namespace of an object, with a Reader whose errors name it."""
    raw = doc.get("metadata")
    is_map = type(raw) is dict or isinstance(raw, Mapping)
    meta: Mapping[str, Any] = raw if is_map else {}  # type: ignore[assignment]
    name = meta.get("name")
    ns = meta.get("namespace") if namespaced else None
    if namespaced and not ns:
        ns = "default"
    r = Reader(ObjectRef(kind=kind, name=str(name or "<unnamed>"), namespace=ns))
    if not is_map:
        raise r.fail("metadata", "required value")
    if not isinstance(name, str) or not name:
        raise r.fail("metadata.name", "required value")
    if namespaced and not isinstance(ns, str):
        raise r.fail("metadata.namespace", f"must be a string, got {ns!r}")
    return r, name, ns or ""


def parse_ip(r: Reader, value: Any, path: str) -> IPAddress:
    if isinstance(value, str):
        # inet_pton then the packed form: several times faster than parsing the text in
        # Python, which matters at 100k pods.
        try:
            return ipaddress.IPv4Address(socket.inet_pton(socket.AF_INET, value))
        except OSError:
            pass
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise r.fail(path, f"invalid IP address {value!r}") from None


def parse_protocol(r: Reader, value: Any, path: str) -> Protocol:
    if value is None:
        return Protocol.TCP
    try:
        return Protocol(value)
    except ValueError:
        raise r.fail(path, f"unsupported value {value!r}: must be one of TCP, UDP, SCTP") from None


def parse_namespace(doc: Mapping[str, Any]) -> Namespace:
    r, name, _ = read_meta("Namespace", doc, namespaced=False)
    labels = parse_labels(r, doc["metadata"].get("labels"), "metadata.labels")
    # The API server always sets this label to the namespace's name.
    labels[NAMESPACE_NAME_LABEL] = name
    notes = r.mapping(doc["metadata"].get("annotations"), "metadata.annotations")
    annotations = {str(k): v for k, v in notes.items() if isinstance(v, str)}
    return Namespace(name=name, labels=labels, annotations=annotations)


def parse_pod(doc: Mapping[str, Any]) -> Pod:
    r, name, ns = read_meta("Pod", doc, namespaced=True)
    labels = parse_labels(r, doc["metadata"].get("labels"), "metadata.labels")
    spec = r.mapping(doc.get("spec"), "spec")
    status = r.mapping(doc.get("status"), "status")
    ports: list[ContainerPort] = []
    seen: set[str] = set()
    for ci, c in enumerate(r.items(spec.get("containers"), "spec.containers")):
        cpath = f"spec.containers[{ci}]"
        cm = r.mapping(c, cpath)
        for pi, p in enumerate(r.items(cm.get("ports"), f"{cpath}.ports")):
            ppath = f"{cpath}.ports[{pi}]"
            pm = r.mapping(p, ppath)
            number = r.integer(pm, "containerPort", ppath, lo=1, hi=65535, required=True)
            assert number is not None
            pname = r.string(pm, "name", ppath)
            if pname:
                if pname in seen:
                    raise r.fail(f"{ppath}.name", f"duplicate port name {pname!r}")
                seen.add(pname)
            proto = parse_protocol(r, pm.get("protocol"), f"{ppath}.protocol")
            ports.append(ContainerPort(name=pname, port=number, protocol=proto))
    ips: list[IPAddress] = []
    for i, entry in enumerate(r.items(status.get("podIPs"), "status.podIPs")):
        em = r.mapping(entry, f"status.podIPs[{i}]")
        ip = parse_ip(r, em.get("ip"), f"status.podIPs[{i}].ip")
        if ip not in ips:
            ips.append(ip)
    if status.get("podIP"):
        ip = parse_ip(r, status.get("podIP"), "status.podIP")
        if ip not in ips:
            ips.insert(0, ip)
    return Pod(
        namespace=ns,
        name=name,
        labels=labels,
        node_name=r.string(spec, "nodeName", "spec"),
        ips=tuple(ips),
        ports=tuple(ports),
        service_account=r.string(spec, "serviceAccountName", "spec") or "default",
        host_network=bool(spec.get("hostNetwork", False)),
    )


def parse_service(doc: Mapping[str, Any]) -> Service:
    r, name, ns = read_meta("Service", doc, namespaced=True)
    spec = r.mapping(doc.get("spec"), "spec")
    labels = parse_labels(r, spec.get("selector"), "spec.selector")
    # An empty selector, like none, leaves the Service's endpoints to someone else.
    selector = (
        LabelSelector(
            requirements=tuple(
                Requirement(key=k, operator=Operator.IN, values=frozenset({v}))
                for k, v in sorted(labels.items())
            )
        )
        if labels
        else None
    )
    return Service(namespace=ns, name=name, selector=selector)


def parse_node(doc: Mapping[str, Any]) -> Node:
    r, name, _ = read_meta("Node", doc, namespaced=False)
    labels = parse_labels(r, doc["metadata"].get("labels"), "metadata.labels")
    status = r.mapping(doc.get("status"), "status")
    ips: list[IPAddress] = []
    for i, a in enumerate(r.items(status.get("addresses"), "status.addresses")):
        am = r.mapping(a, f"status.addresses[{i}]")
        if am.get("type") in ("InternalIP", "ExternalIP"):
            ips.append(parse_ip(r, am.get("address"), f"status.addresses[{i}].address"))
    return Node(name=name, labels=labels, ips=tuple(ips))


def parse_ip_block(r: Reader, value: Any, path: str, *, allow_except: bool = True) -> IPBlock:
    m = r.mapping(value, path)
    cidr = r.cidr(m.get("cidr"), f"{path}.cidr")
    excepts: list[IPNetwork] = []
    raw_except = m.get("except")
    if raw_except is not None and not allow_except:
        raise r.fail(f"{path}.except", "not supported here")
    for i, e in enumerate(r.items(raw_except, f"{path}.except")):
        net = r.cidr(e, f"{path}.except[{i}]")
        if net.version != cidr.version or not net.subnet_of(cidr):  # type: ignore[arg-type]
            raise r.fail(f"{path}.except[{i}]", f"must be a strict subset of {cidr}")
        if net == cidr:
            raise r.fail(f"{path}.except[{i}]", f"must be a strict subset of {cidr}")
        excepts.append(net)
    return IPBlock(cidr=cidr, excepts=tuple(excepts))


def parse_port_number(
    r: Reader, m: Mapping[str, Any], key: str, path: str
) -> tuple[int | None, str]:
    """A port that may be a number or a name (IntOrString)."""
    value = m.get(key)
    where = f"{path}.{key}"
    if value is None:
        return None, ""
    if isinstance(value, bool):
        raise r.fail(where, f"must be a port number or name, got {value!r}")
    if isinstance(value, int):
        if not 1 <= value <= 65535:
            raise r.fail(where, f"must be between 1 and 65535, inclusive, got {value}")
        return value, ""
    if isinstance(value, str):
        if not value or len(value) > 15 or not any(ch.isalpha() for ch in value):
            raise r.fail(
                where,
                f"invalid port name {value!r}: must be 1-15 characters with at least one letter",
            )
        return None, value
    raise r.fail(where, f"must be a port number or name, got {value!r}")
