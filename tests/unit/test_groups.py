"""The controller's compilation into AppliedToGroups and AddressGroups with span."""

from __future__ import annotations

from fyke.api.load import load_texts
from fyke.policy.cluster import Cluster
from fyke.policy.compile import compile_policies
from fyke.policy.groups import ControllerState, compile_groups

CLUSTER = """
apiVersion: v1
kind: Namespace
metadata: {name: x, labels: {team: red}}
---
apiVersion: v1
kind: Namespace
metadata: {name: y, labels: {team: red}}
---
apiVersion: v1
kind: Namespace
metadata: {name: z, labels: {team: blue}}
""" + "".join(
    f"""---
apiVersion: v1
kind: Pod
metadata: {{name: {p}, namespace: {ns}, labels: {{app: {p}}}}}
spec: {{nodeName: node-{n}}}
status: {{podIP: 10.0.{i}.{j}}}
"""
    for i, ns in enumerate("xyz")
    for j, (p, n) in enumerate((("a", 1), ("b", 2)), start=1)
)


def _state(policies: str) -> tuple[Cluster, ControllerState]:
    inv = load_texts([("t", CLUSTER + "---\n" + policies)])
    cluster = Cluster(inv.namespaces, inv.pods, inv.nodes)
    return cluster, compile_groups(cluster, compile_policies(inv))


def _members(cluster: Cluster, pods: list[int]) -> list[str]:
    return sorted(cluster.pods[i].key for i in pods)


def test_identical_selectors_share_one_group_and_span_follows_pods() -> None:
    cluster, state = _state(
        """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: x}
spec: {podSelector: {}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-a, namespace: x}
spec:
  podSelector: {}
  ingress:
  - from: [{podSelector: {matchLabels: {app: a}}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-team-red, namespace: z}
spec:
  podSelector: {matchLabels: {app: b}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {team: red}}}]
"""
    )
    applied = {g.key: g for g in state.applied_to_groups.values()}
    assert len(applied) == 2  # x's {} selector once, z's app=b
    whole_x = applied["ns=x;podSel=<all>"]
    assert _members(cluster, whole_x.pods) == ["x/a", "x/b"]
    assert whole_x.span == {"node-1", "node-2"}
    z_b = applied["ns=z;podSel=app=b"]
    assert _members(cluster, z_b.pods) == ["z/b"]
    assert z_b.span == {"node-2"}

    address = {g.key: g for g in state.address_groups.values()}
    red = address["ns=*;nsSel=team=red"]
    assert _members(cluster, red.pods) == ["x/a", "x/b", "y/a", "y/b"]
    # An AddressGroup goes where the policies that use it are enforced.
    assert red.span == {"node-2"}
    assert state.policies["NetworkPolicy:z/from-team-red"].span == {"node-2"}


def test_relative_peers_are_split_per_namespace() -> None:
    cluster, state = _state(
        """
apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: same-ns}
spec:
  priority: 1
  appliedTo: [{namespaceSelector: {matchLabels: {team: red}}}]
  ingress:
  - action: Allow
    from: [{namespaces: {match: Self}}]
"""
    )
    pol = state.policies["ClusterNetworkPolicy:/same-ns"]
    assert len(pol.rules) == 2  # x and y
    by_applied = {}
    for rule in pol.rules:
        (applied,) = rule.applied_to_groups
        (address,) = rule.address_groups
        by_applied[tuple(_members(cluster, state.applied_to_groups[applied].pods))] = _members(
            cluster, state.address_groups[address].pods
        )
    assert by_applied == {
        ("x/a", "x/b"): ["x/a", "x/b"],
        ("y/a", "y/b"): ["y/a", "y/b"],
    }
