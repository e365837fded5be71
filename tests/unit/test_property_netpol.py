"""Property tests: fyke's matrix against a naive reference reading of the Kubernetes
NetworkPolicy spec, on random clusters and policies; and the all-ports ranges against
per-port answers."""

from __future__ import annotations

import ipaddress
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fyke.api.load import load_texts
from fyke.policy.cluster import Cluster, Endpoint
from fyke.policy.compile import compile_policies
from fyke.policy.evaluate import Evaluator
from fyke.policy.matrix import PortQuery, all_ports_matrix, port_matrix
from fyke.policy.model import Action

NAMESPACES = ("x", "y")
LABEL_VALUES = ("a", "b")
PROTOS = ("TCP", "UDP")
PORTS = (80, 81, 82)

labels_st = st.dictionaries(st.sampled_from(("app", "tier")), st.sampled_from(LABEL_VALUES))
selector_st = st.fixed_dictionaries({"matchLabels": labels_st})


@st.composite
def peer_st(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(("pod", "ns", "both", "ip")))
    if kind == "ip":
        block: dict[str, Any] = {"cidr": "10.0.0.0/28"}
        if draw(st.booleans()):
            block["except"] = ["10.0.0.0/30"]
        return {"ipBlock": block}
    peer: dict[str, Any] = {}
    if kind in ("pod", "both"):
        peer["podSelector"] = draw(selector_st)
    if kind in ("ns", "both"):
        peer["namespaceSelector"] = {
            "matchLabels": draw(st.dictionaries(st.just("ns"), st.sampled_from(NAMESPACES)))
        }
    return peer


@st.composite
def port_st(draw: st.DrawFn) -> dict[str, Any]:
    proto = draw(st.sampled_from(PROTOS))
    kind = draw(st.sampled_from(("number", "range", "named", "all")))
    if kind == "number":
        return {"protocol": proto, "port": draw(st.sampled_from(PORTS))}
    if kind == "range":
        return {"protocol": proto, "port": 80, "endPort": draw(st.sampled_from((80, 81)))}
    if kind == "named":
        return {"protocol": proto, "port": draw(st.sampled_from(("web", "alt")))}
    return {"protocol": proto}


@st.composite
def rule_st(draw: st.DrawFn, peer_key: str) -> dict[str, Any]:
    rule: dict[str, Any] = {}
    if draw(st.booleans()):
        rule[peer_key] = draw(st.lists(peer_st(), max_size=2))
    if draw(st.booleans()):
        rule["ports"] = draw(st.lists(port_st(), max_size=2))
    return rule


@st.composite
def policy_st(draw: st.DrawFn, i: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"podSelector": draw(selector_st)}
    if draw(st.booleans()):
        spec["ingress"] = draw(st.lists(rule_st("from"), max_size=2))
    if draw(st.booleans()):
        spec["egress"] = draw(st.lists(rule_st("to"), max_size=2))
    types = draw(st.sampled_from((None, ["Ingress"], ["Egress"], ["Ingress", "Egress"])))
    if types is not None:
        spec["policyTypes"] = types
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"np{i}", "namespace": draw(st.sampled_from(NAMESPACES))},
        "spec": spec,
    }


@st.composite
def cluster_st(draw: st.DrawFn) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n, "labels": {"ns": n}}}
        for n in NAMESPACES
    ]
    ip = 1
    for n in NAMESPACES:
        for p in range(draw(st.integers(1, 3))):
            ports = [
                {
                    "name": "web",
                    "containerPort": draw(st.sampled_from(PORTS)),
                    "protocol": draw(st.sampled_from(PROTOS)),
                }
            ]
            if draw(st.booleans()):
                ports.append({"name": "alt", "containerPort": 82, "protocol": "UDP"})
            docs.append(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": f"p{p}", "namespace": n, "labels": draw(labels_st)},
                    "spec": {"containers": [{"name": "c", "ports": ports}]},
                    "status": {"podIP": f"10.0.0.{ip}"},
                }
            )
            ip += 1
    for i in range(draw(st.integers(0, 4))):
        docs.append(draw(policy_st(i)))
    return docs


# --- the reference: a direct reading of the spec over raw dicts ---------------------------


def _sel(sel: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in sel.get("matchLabels", {}).items())


def _types(np: dict[str, Any]) -> list[str]:
    spec = np["spec"]
    if spec.get("policyTypes"):
        return list(spec["policyTypes"])
    return ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]


def _peer_ok(peer: dict[str, Any], np_ns: str, pod: dict[str, Any], ns_labels: Any) -> bool:
    if "ipBlock" in peer:
        ip = ipaddress.ip_address(pod["status"]["podIP"])
        blk = peer["ipBlock"]
        return ip in ipaddress.ip_network(blk["cidr"]) and not any(
            ip in ipaddress.ip_network(e) for e in blk.get("except", [])
        )
    ns = pod["metadata"]["namespace"]
    if "namespaceSelector" in peer:
        if not _sel(peer["namespaceSelector"], ns_labels[ns]):
            return False
    elif ns != np_ns:
        return False
    return "podSelector" not in peer or _sel(peer["podSelector"], pod["metadata"]["labels"])


def _port_ok(p: dict[str, Any], dst: dict[str, Any], proto: str, port: int) -> bool:
    if p["protocol"] != proto:
        return False
    if "port" not in p:
        return True
    if isinstance(p["port"], str):
        return any(
            c["name"] == p["port"] and c["protocol"] == proto and c["containerPort"] == port
            for c in dst["spec"]["containers"][0]["ports"]
        )
    return bool(p["port"] <= port <= p.get("endPort", p["port"]))


def reference(docs: list[dict[str, Any]], src: Any, dst: Any, proto: str, port: int) -> bool:
    ns_labels = {
        d["metadata"]["name"]: d["metadata"]["labels"] for d in docs if d["kind"] == "Namespace"
    }
    nps = [d for d in docs if d["kind"] == "NetworkPolicy"]

    def side(subject: Any, peer: Any, direction: str, key: str, peer_key: str) -> bool:
        selecting = [
            np
            for np in nps
            if np["metadata"]["namespace"] == subject["metadata"]["namespace"]
            and _sel(np["spec"]["podSelector"], subject["metadata"]["labels"])
            and direction in _types(np)
        ]
        if not selecting:
            return True
        for np in selecting:
            for rule in np["spec"].get(key) or []:
                peers = rule.get(peer_key) or []
                ports = rule.get("ports") or []
                peer_ok = not peers or any(
                    _peer_ok(p, np["metadata"]["namespace"], peer, ns_labels) for p in peers
                )
                port_ok = not ports or any(_port_ok(p, dst, proto, port) for p in ports)
                if peer_ok and port_ok:
                    return True
        return False

    return side(src, dst, "Egress", "egress", "to") and side(dst, src, "Ingress", "ingress", "from")


def _evaluator(docs: list[dict[str, Any]]) -> Evaluator:
    inv = load_texts([("gen", yaml.safe_dump_all(docs))])
    return Evaluator(Cluster(inv.namespaces, inv.pods, inv.nodes), compile_policies(inv))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cluster_st())
def test_matrix_agrees_with_reference(docs: list[dict[str, Any]]) -> None:
    ev = _evaluator(docs)
    queries = [PortQuery(proto, port) for proto in ev_protocols() for port in PORTS]
    matrix = port_matrix(ev, queries)
    pods = {
        f"{d['metadata']['namespace']}/{d['metadata']['name']}": d
        for d in docs
        if d["kind"] == "Pod"
    }
    for s, row in matrix.items():
        for d, cell in row.items():
            for q in queries:
                want = reference(docs, pods[s], pods[d], q.protocol.value, q.port)
                got = cell[str(q)] == "allow"
                assert got == want, (s, d, str(q))


def ev_protocols() -> list[Any]:
    from fyke.api.core import Protocol

    return [Protocol.TCP, Protocol.UDP]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cluster_st(), st.lists(st.integers(1, 65535), min_size=1, max_size=5))
def test_all_ports_ranges_agree_with_point_queries(
    docs: list[dict[str, Any]], probes: list[int]
) -> None:
    ev = _evaluator(docs)
    ranges = all_ports_matrix(ev)
    for s, row in ranges.items():
        for d, cell in row.items():
            for proto_name, allowed in cell.items():
                for port in [*probes, *PORTS, 1, 65535]:
                    in_ranges = any(a <= port <= b for a, b in allowed)
                    from fyke.api.core import Protocol

                    dec = ev.decide(
                        Endpoint(pod=ev.cluster.index[s]),
                        Endpoint(pod=ev.cluster.index[d]),
                        Protocol(proto_name),
                        port,
                    )
                    assert in_ranges == (dec.verdict is Action.ALLOW), (s, d, proto_name, port)
