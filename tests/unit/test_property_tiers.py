"""Property test over tiered policies (Antrea tiers, Pass, Reject, AdminNetworkPolicy,
BaselineAdminNetworkPolicy, NetworkPolicy isolation): the interval walk behind
`--all-ports` and the per-port matrix must agree with Evaluator.decide on every port."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fyke.api.core import Protocol
from fyke.api.load import load_texts
from fyke.policy.cluster import Cluster, Endpoint
from fyke.policy.compile import compile_policies
from fyke.policy.evaluate import Evaluator
from fyke.policy.matrix import PortQuery, all_ports_matrix, port_matrix
from fyke.policy.model import Action

NS = ("x", "y")
PORTS = (79, 80, 81, 90, 443)

pod_sel = st.sampled_from(({}, {"matchLabels": {"app": "a"}}, {"matchLabels": {"app": "b"}}))
ns_sel = st.sampled_from(({}, {"matchLabels": {"ns": "x"}}, {"matchLabels": {"ns": "y"}}))


@st.composite
def antrea_ports(draw: st.DrawFn) -> list[dict[str, Any]] | None:
    choice = draw(st.sampled_from(("none", "one", "range", "named", "udp")))
    if choice == "none":
        return None
    if choice == "one":
        return [{"protocol": "TCP", "port": draw(st.sampled_from(PORTS))}]
    if choice == "range":
        return [{"protocol": "TCP", "port": 80, "endPort": draw(st.sampled_from((80, 81, 90)))}]
    if choice == "named":
        return [{"protocol": "TCP", "port": "web"}]
    return [{"protocol": "UDP", "port": 80}]


@st.composite
def acnp(draw: st.DrawFn, i: int) -> dict[str, Any]:
    tier = draw(st.sampled_from(("emergency", "securityops", "application", "baseline")))
    actions = ["Allow", "Drop", "Reject"] + ([] if tier == "baseline" else ["Pass"])
    rules = []
    for _ in range(draw(st.integers(1, 3))):
        rule: dict[str, Any] = {"action": draw(st.sampled_from(actions))}
        if draw(st.booleans()):
            rule["from"] = [{"podSelector": draw(pod_sel), "namespaceSelector": draw(ns_sel)}]
        ports = draw(antrea_ports())
        if ports is not None:
            rule["ports"] = ports
        rules.append(rule)
    return {
        "apiVersion": "crd.antrea.io/v1beta1",
        "kind": "ClusterNetworkPolicy",
        "metadata": {"name": f"acnp{i}"},
        "spec": {
            "priority": draw(st.sampled_from((1, 2, 5))),
            "tier": tier,
            "appliedTo": [{"podSelector": draw(pod_sel)}],
            "ingress": rules,
        },
    }


@st.composite
def anp(draw: st.DrawFn, i: int, baseline: bool) -> dict[str, Any]:
    rules = []
    for j in range(draw(st.integers(1, 2))):
        rule: dict[str, Any] = {
            "name": f"r{j}",
            "action": draw(
                st.sampled_from(("Allow", "Deny") if baseline else ("Allow", "Deny", "Pass"))
            ),
            "from": [{"namespaces": draw(ns_sel)}],
        }
        if draw(st.booleans()):
            rule["ports"] = [
                draw(
                    st.sampled_from(
                        (
                            {"portNumber": {"protocol": "TCP", "port": 80}},
                            {"portRange": {"protocol": "TCP", "start": 80, "end": 443}},
                            {"namedPort": "web"},
                        )
                    )
                )
            ]
        rules.append(rule)
    spec: dict[str, Any] = {"subject": {"namespaces": draw(ns_sel)}, "ingress": rules}
    if not baseline:
        spec["priority"] = draw(st.integers(0, 3))
    return {
        "apiVersion": "policy.networking.k8s.io/v1alpha1",
        "kind": "BaselineAdminNetworkPolicy" if baseline else "AdminNetworkPolicy",
        "metadata": {"name": "default" if baseline else f"anp{i}"},
        "spec": spec,
    }


@st.composite
def netpol(draw: st.DrawFn, i: int) -> dict[str, Any]:
    rule: dict[str, Any] = {}
    if draw(st.booleans()):
        rule["ports"] = [{"port": draw(st.sampled_from(PORTS))}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"np{i}", "namespace": draw(st.sampled_from(NS))},
        "spec": {"podSelector": draw(pod_sel), "ingress": draw(st.sampled_from(([], [rule])))},
    }


@st.composite
def cluster(draw: st.DrawFn) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n, "labels": {"ns": n}}}
        for n in NS
    ]
    for k, (n, app) in enumerate((("x", "a"), ("x", "b"), ("y", "a"), ("y", "b"))):
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"p{k}", "namespace": n, "labels": {"app": app}},
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "ports": [
                                {"name": "web", "containerPort": draw(st.sampled_from(PORTS))}
                            ],
                        }
                    ]
                },
                "status": {"podIP": f"10.0.0.{k + 1}"},
            }
        )
    docs += [draw(acnp(i)) for i in range(draw(st.integers(0, 3)))]
    docs += [draw(anp(i, False)) for i in range(draw(st.integers(0, 2)))]
    if draw(st.booleans()):
        docs.append(draw(anp(0, True)))
    docs += [draw(netpol(i)) for i in range(draw(st.integers(0, 2)))]
    return docs


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cluster())
def test_matrices_agree_with_decide(docs: list[dict[str, Any]]) -> None:
    inv = load_texts([("gen", yaml.safe_dump_all(docs))])
    ev = Evaluator(Cluster(inv.namespaces, inv.pods, inv.nodes), compile_policies(inv))
    ranges = all_ports_matrix(ev)
    queries = [PortQuery(Protocol.TCP, p) for p in PORTS] + [PortQuery(Protocol.UDP, 80)]
    verdicts = port_matrix(ev, queries)
    for s, row in ranges.items():
        for d, cell in row.items():
            src, dst = Endpoint(pod=ev.cluster.index[s]), Endpoint(pod=ev.cluster.index[d])
            for q in queries:
                dec = ev.decide(src, dst, q.protocol, q.port)
                allowed = any(a <= q.port <= b for a, b in cell[q.protocol.value])
                assert allowed == (dec.verdict is Action.ALLOW), (s, d, str(q))
                assert verdicts[s][d][str(q)] == dec.verdict.value, (s, d, str(q))
