"""Spans: what the controller sends a node is what the node would realize by itself, and
updates carry group members, not whole groups."""

from __future__ import annotations

import copy
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from fyke.api.load import documents, load_objects
from fyke.datapath.policy import NodePolicy, peer_networks
from fyke.datapath.policy_realize import realize
from fyke.datapath.span import (
    NodeSpan,
    RuleIds,
    apply,
    cluster_spans,
    diff,
    node_policy,
    parse_span,
    span_json,
)
from fyke.policy.cluster import Cluster
from fyke.policy.compile import compile_policies
from fyke.policy.evaluate import Evaluator

ROOT = Path(__file__).parents[2]
sys.path.insert(0, str(ROOT / "bench"))
import gen_netpol  # noqa: E402

NODES = ["node-1", "node-2", "node-3"]


def _spread(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    docs = copy.deepcopy(docs)
    pods = [d for d in docs if d.get("kind") == "Pod"]
    for i, pod in enumerate(pods):
        pod.setdefault("spec", {})["nodeName"] = NODES[i % len(NODES)]
    return docs


def _examples() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for f in ("cluster.yaml", "policies.yaml"):
        path = ROOT / "examples" / f
        docs.extend(dict(d) for d in documents(path.read_text(), str(path)))
    return _spread(docs)


def _with_source_ports() -> list[dict[str, Any]]:
    """The examples and an Antrea policy with source port ranges (they cross the wire)."""
    acnp = {
        "apiVersion": "crd.antrea.io/v1beta1",
        "kind": "ClusterNetworkPolicy",
        "metadata": {"name": "source-ports"},
        "spec": {
            "priority": 1,
            "appliedTo": [{"namespaceSelector": {}}],
            "ingress": [
                {
                    "action": "Drop",
                    "from": [{"namespaceSelector": {"matchLabels": {"ns": "z"}}}],
                    "ports": [
                        {"protocol": "TCP", "port": 80, "sourcePort": 1000},
                        {"protocol": "UDP", "sourcePort": 30000, "sourceEndPort": 61000},
                    ],
                }
            ],
        },
    }
    return [*_examples(), acnp]


def _generated(seed: int = 5) -> list[dict[str, Any]]:
    return _spread(gen_netpol.generate(gen_netpol.Shape(4, 8), 30, seed))


def _evaluator(docs: list[dict[str, Any]]) -> Evaluator:
    inv = load_objects(docs)
    return Evaluator(Cluster(inv.namespaces, inv.pods, inv.nodes), compile_policies(inv))


def _semantics(node: NodePolicy) -> tuple[Counter[Any], frozenset[int], frozenset[int]]:
    """A realized node policy without its rule numbering."""
    rules: Counter[Any] = Counter(
        (
            r.direction,
            r.layer,
            r.order,
            r.action,
            r.applied,
            None if r.peers is None else tuple(peer_networks(r.peers)),
            None if r.services is None else frozenset(r.services),
            r.logged,
        )
        for r in node.rules
    )
    return rules, node.isolated_egress, node.isolated_ingress


@pytest.mark.parametrize(
    "docs",
    [_examples(), _with_source_ports(), _generated(5), _generated(6)],
    ids=["examples", "source-ports", "generated-5", "generated-6"],
)
def test_span_realizes_what_the_node_would_alone(docs: list[dict[str, Any]]) -> None:
    ev = _evaluator(docs)
    spans = cluster_spans(ev, NODES, {})
    assert any(s.policies for s in spans.values())
    for node, span in spans.items():
        local = {i: 10 + i for i, pod in enumerate(ev.cluster.pods) if pod.node_name == node}
        ofports = {ev.cluster.pods[i].key: port for i, port in local.items()}
        # Through the wire form, as an agent gets it.
        wired = parse_span(json.loads(json.dumps(span_json(span))))
        got = node_policy(wired, ofports, RuleIds())
        assert _semantics(got) == _semantics(realize(ev, local)), node


def test_span_holds_only_the_nodes_pods_and_what_protects_them() -> None:
    ev = _evaluator(_examples())
    spans = cluster_spans(ev, NODES, {})
    for node, span in spans.items():
        mine = {p.key for p in ev.cluster.pods if p.node_name == node}
        for name, members in span.applied_groups.items():
            assert members <= mine, (node, name)
        used = {r.applied_group for p in span.policies.values() for r in p.rules}
        used |= {g for p in span.policies.values() for _, g in p.isolates}
        assert used == set(span.applied_groups)
    # A node with no pods needs no policy at all.
    assert cluster_spans(ev, ["node-9"], {})["node-9"].policies == {}


def _with_pod(docs: list[dict[str, Any]], ns: str, name: str, ip: str, node: str) -> Any:
    pod = next(d for d in docs if d.get("kind") == "Pod" and d["metadata"]["namespace"] == ns)
    new = copy.deepcopy(pod)
    new["metadata"]["name"] = name
    new["spec"]["nodeName"] = node
    new.setdefault("status", {})["podIP"] = ip
    new["status"]["podIPs"] = [{"ip": ip}]
    return [*docs, new]


def test_a_new_pod_is_sent_as_members_added_not_as_whole_groups() -> None:
    docs = _examples()
    before = cluster_spans(_evaluator(docs), NODES, {})
    after = cluster_spans(_evaluator(_with_pod(docs, "y", "d", "10.244.3.99", "node-3")), NODES, {})
    update = diff(before["node-1"], after["node-1"])
    assert update is not None
    events = update["events"]
    assert events and all(e["op"] == "modify" and e["kind"] == "AddressGroup" for e in events)
    assert all(e["added"] == ["10.244.3.99/32"] and e["removed"] == [] for e in events)
    assert "members" not in json.dumps(update)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_diff_then_apply_gives_the_new_span(seed: int) -> None:
    import random

    rnd = random.Random(seed)
    states = [_generated(seed), _generated(seed + 10), _examples(), _generated(seed)]
    states.append(_with_pod(states[-1], "ns-01", "extra", "10.99.0.7", "node-2"))
    rnd.shuffle(states)
    versions = [{"g/K/ns/p": ("uid-1", 1)}, {"g/K/ns/p": ("uid-1", 2), "g/K//q": ("u", 1)}]
    held = {n: NodeSpan() for n in NODES}
    for i, docs in enumerate(states):
        new = cluster_spans(_evaluator(docs), NODES, versions[i % 2])
        for node in NODES:
            update = diff(held[node], new[node])
            if update is not None:
                apply(held[node], json.loads(json.dumps(update)))
            assert span_json(held[node]) == span_json(new[node])
            assert diff(held[node], new[node]) is None


def test_apply_refuses_a_modify_of_a_group_it_never_got() -> None:
    span = NodeSpan()
    with pytest.raises(KeyError):
        apply(
            span,
            {"events": [{"op": "modify", "kind": "AddressGroup", "name": "x", "added": []}]},
        )


def test_rule_ids_are_stable_and_never_reused() -> None:
    ev = _evaluator(_examples())
    span = cluster_spans(ev, ["node-1"], {})["node-1"]
    ofports = {p.key: 10 + i for i, p in enumerate(ev.cluster.pods)}
    ids = RuleIds()
    first = node_policy(span, ofports, ids)
    again = node_policy(span, ofports, ids)
    assert first == again
    assert len({r.rule_id for r in first.rules}) == len(first.rules)
    for r in first.rules:
        rule = ids.rule(r.rule_id)
        assert rule is not None and rule.direction == r.direction
    # Without its policies, then with them again: the same numbers.
    node_policy(NodeSpan(), ofports, ids)
    assert node_policy(span, ofports, ids) == first
    assert ids.id("a new rule") == max(r.rule_id for r in first.rules) + 1


def test_an_annotated_namespace_logs_its_network_policies_and_their_isolation() -> None:
    from fyke.api.core import Direction
    from fyke.datapath.policy import ISOLATION_PRIORITY, USERDATA_LOG, policy_flows
    from fyke.datapath.span import ISOLATION_RULE
    from fyke.policy.compile import NP_LOGGING_ANNOTATION

    docs = _examples()
    ns_y = next(d for d in docs if d["kind"] == "Namespace" and d["metadata"]["name"] == "y")
    ns_y["metadata"]["annotations"] = {NP_LOGGING_ANNOTATION: "true"}
    ev = _evaluator(docs)
    np_rules = [r for r in ev.policies.rules if r.policy.kind == "NetworkPolicy"]
    assert np_rules and all(r.logged for r in np_rules)  # allow-x-only lives in y
    y_pods = {i for i, p in enumerate(ev.cluster.pods) if p.namespace == "y"}
    node = ev.cluster.pods[min(y_pods)].node_name
    span = cluster_spans(ev, [node], {})[node]
    policy = span.policies["networking.k8s.io/NetworkPolicy/y/allow-x-only"]
    assert policy.log_isolation and [d for d, _ in policy.isolates] == [Direction.INGRESS]
    ofports = {p.key: 10 + i for i, p in enumerate(ev.cluster.pods) if p.node_name == node}
    ids = RuleIds()
    realized = node_policy(span, ofports, ids)
    isolated_y = {
        ofports[ev.cluster.pods[i].key] for i in y_pods if ev.cluster.pods[i].key in ofports
    }
    assert {port for _, port, _ in realized.logged_isolation} == isolated_y
    for direction, _, rule_id in realized.logged_isolation:
        rule = ids.rule(rule_id)
        assert rule is not None and rule.name == ISOLATION_RULE and rule.logged
        assert (rule.policy.namespace, rule.policy.name) == ("y", "allow-x-only")
        assert direction is Direction.INGRESS
    flows = policy_flows(realized, round=1)
    logs = [
        f
        for f in flows
        if any(getattr(a, "userdata", b"")[:1] == bytes([USERDATA_LOG]) for a in f.actions)
    ]
    # One logged isolation drop per isolated y pod, plus the logged allow rule's flow.
    assert len([f for f in logs if f.priority == ISOLATION_PRIORITY]) == len(isolated_y)
    # Without the annotation nothing is logged.
    plain = cluster_spans(_evaluator(_examples()), [node], {})[node]
    assert not node_policy(plain, ofports, RuleIds()).logged_isolation


def test_the_rule_flow_cache_changes_nothing_but_the_work() -> None:
    from fyke.datapath.policy import RuleFlowCache, policy_flows

    ev = _evaluator(_generated(7))
    span = cluster_spans(ev, ["node-1"], {})["node-1"]
    ofports = {p.key: 10 + i for i, p in enumerate(ev.cluster.pods) if p.node_name == "node-1"}
    ids, cache = RuleIds(), RuleFlowCache()
    first = policy_flows(node_policy(span, ofports, ids), round=3, cache=cache)
    assert cache and first == policy_flows(node_policy(span, ofports, RuleIds()), round=3)
    # One pod leaves: the cached result equals a fresh build, and the cache keeps only
    # the rules still realized.
    fewer = dict(list(ofports.items())[1:])
    cached = policy_flows(node_policy(span, fewer, ids), round=3, cache=cache)
    assert cached == policy_flows(node_policy(span, fewer, ids), round=3)
    assert {k[0] for k in cache} == set(node_policy(span, fewer, ids).rules)


def test_rule_ids_forget_keys_out_of_use_and_never_hand_out_a_held_number(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fyke.datapath import span as span_mod

    ids = RuleIds()
    ids.SLACK = 0
    nums = {k: ids.id(k) for k in "abcdefgh"}
    assert list(nums.values()) == list(range(1, 9))
    ids.settle({nums["a"], nums["h"]})  # 8 keys > 2 x 2 used: the others are forgotten
    assert ids.id("a") == 1 and ids.id("h") == 8
    assert ids.id("b") == 9  # a forgotten key comes back under a new number
    monkeypatch.setattr(span_mod, "MAX_RULE_ID", 10)
    assert ids.id("x") == 10
    assert ids.id("y") == 2  # wrapped around, past 1 (held by a)
    assert sorted(ids.id(k) for k in "pqrst") == [3, 4, 5, 6, 7]  # the free ones
    with pytest.raises(ValueError, match="more than 10 rules"):
        ids.id("u")  # all ten held
