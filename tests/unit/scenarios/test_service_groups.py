"""Antrea groups by `serviceReference`: the pods the Service's selector picks.

Antrea's docs: a ClusterGroup with serviceReference "will contain the same Pod members
that are currently selected by the Service's selector"; Services without a selector are
not supported and select nothing; no Service port is implied. Modeled on Antrea's e2e
testACNPClusterGroupServiceRefCreateAndUpdate (a Service in y selecting pod b, a group
on it, an ACNP dropping from it) on the standard x/y/z cluster.
"""

from __future__ import annotations

from tests.unit.scenarios._harness import (
    Truth,
    check_matrix,
    manifest,
    on_ports,
    run_with_input,
)
from tests.unit.scenarios.test_antrea_tiers import ANTREA, _doc, acnp, annp, cluster_group


def service(name: str, namespace: str, selector: str | None) -> str:
    sel = f"  selector: {selector}\n" if selector is not None else ""
    return (
        f"apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {namespace}\n"
        f"spec:\n{sel}  ports:\n  - {{port: 80, protocol: TCP}}\n"
    )


DROP_FROM_CG_TO_X = acnp(
    "acnp-drop-cg-to-x",
    1,
    """
    appliedTo:
    - namespaceSelector: {matchLabels: {ns: x}}
    ingress:
    - action: Drop
      from:
      - group: cg-svc
    """,
)


def test_service_group_as_peer_is_the_services_pods() -> None:
    check_matrix(
        [
            service("svc-yb", "y", "{pod: b}"),
            cluster_group("cg-svc", "serviceReference: {name: svc-yb, namespace: y}"),
            DROP_FROM_CG_TO_X,
        ],
        on_ports(Truth().drop("y/b", "x/*"), "80/TCP", "81/UDP"),  # no port implied
    )


def test_service_group_as_applied_to() -> None:
    check_matrix(
        [
            service("svc-xa", "x", "{pod: a}"),
            cluster_group("cg-svc", "serviceReference: {name: svc-xa, namespace: x}"),
            acnp(
                "acnp-drop-z-to-svc",
                1,
                """
                appliedTo:
                - group: cg-svc
                ingress:
                - action: Drop
                  from:
                  - namespaceSelector: {matchLabels: {ns: z}}
                """,
            ),
        ],
        on_ports(Truth().drop("z/*", "x/a"), "80/TCP"),
    )


def test_service_selector_is_namespaced() -> None:
    """pod=b in y only, though every namespace has a pod b."""
    check_matrix(
        [
            service("svc-b", "y", "{pod: b}"),
            cluster_group("cg-svc", "serviceReference: {name: svc-b, namespace: y}"),
            DROP_FROM_CG_TO_X,
        ],
        on_ports(Truth().drop("y/b", "x/*"), "80/TCP"),
    )


def test_child_group_with_service_reference() -> None:
    check_matrix(
        [
            service("svc-yb", "y", "{pod: b}"),
            service("svc-zc", "z", "{pod: c}"),
            cluster_group("cg-yb", "serviceReference: {name: svc-yb, namespace: y}"),
            cluster_group("cg-zc", "serviceReference: {name: svc-zc, namespace: z}"),
            cluster_group("cg-svc", "childGroups: [cg-yb, cg-zc]"),
            DROP_FROM_CG_TO_X,
        ],
        on_ports(Truth().drop(["y/b", "z/c"], "x/*"), "80/TCP"),
    )


def test_group_in_antrea_networkpolicy_defaults_to_its_namespace() -> None:
    check_matrix(
        [
            service("svc-xb", "x", "{pod: b}"),
            _doc(ANTREA, "Group", "g-svc", "serviceReference: {name: svc-xb}", "x"),
            annp(
                "annp-drop-from-svc",
                "x",
                1,
                """
                appliedTo:
                - podSelector: {matchLabels: {pod: a}}
                ingress:
                - action: Drop
                  from:
                  - group: g-svc
                """,
            ),
        ],
        on_ports(Truth().drop("x/b", "x/a"), "80/TCP"),
    )


def _warned(policies: list[str]) -> str:
    rc, out, err = run_with_input(manifest(policies), "matrix", ["--port", "80/TCP", "-o", "json"])
    assert rc == 0, err
    return err


def test_missing_service_or_selector_selects_nothing_with_a_warning() -> None:
    missing = [cluster_group("cg-svc", "serviceReference: {name: nope, namespace: y}")]
    check_matrix([*missing, DROP_FROM_CG_TO_X], on_ports(Truth(), "80/TCP"))
    assert "serviceReference y/nope: no such Service" in _warned([*missing, DROP_FROM_CG_TO_X])
    bare = [
        service("svc-bare", "y", None),
        cluster_group("cg-svc", "serviceReference: {name: svc-bare, namespace: y}"),
    ]
    check_matrix([*bare, DROP_FROM_CG_TO_X], on_ports(Truth(), "80/TCP"))
    assert "the Service has no selector" in _warned([*bare, DROP_FROM_CG_TO_X])


def test_service_reference_needs_a_name() -> None:
    bad = [cluster_group("cg-svc", "serviceReference: {namespace: y}"), DROP_FROM_CG_TO_X]
    rc, _, err = run_with_input(manifest(bad), "matrix", ["--port", "80/TCP"])
    assert rc == 1
    assert "ClusterGroup cg-svc" in err and "spec.serviceReference.name" in err


# testANNPNestedGroupCreateAndUpdate writes its appliedTo as `[{}]`: Antrea accepts an
# entry with nothing set, and makes it a group of no selector in the policy's namespace
# (every pod there); in a cluster policy the same entry selects nothing.
def test_empty_entry_in_an_antrea_networkpolicy_is_its_namespace() -> None:
    check_matrix(
        [
            service("svc-xa", "x", "{pod: a}"),
            _doc(ANTREA, "Group", "g-svc", "serviceReference: {name: svc-xa}", "x"),
            annp(
                "annp-drop-svc-to-all",
                "x",
                1,
                """
                appliedTo:
                - {}
                ingress:
                - action: Drop
                  from:
                  - group: g-svc
                """,
            ),
        ],
        on_ports(Truth().drop("x/a", ["x/b", "x/c"]), "80/TCP"),
    )


def test_empty_peer_in_an_antrea_networkpolicy_is_its_namespace() -> None:
    check_matrix(
        [
            annp(
                "annp-drop-own-namespace",
                "y",
                1,
                """
                appliedTo:
                - podSelector: {matchLabels: {pod: a}}
                ingress:
                - action: Drop
                  from:
                  - {}
                """,
            )
        ],
        on_ports(Truth().drop(["y/b", "y/c"], "y/a"), "80/TCP"),
    )


def test_empty_entry_in_a_cluster_policy_selects_nothing() -> None:
    policy = acnp(
        "acnp-empty-applied-to",
        1,
        """
        appliedTo:
        - {}
        ingress:
        - action: Drop
          from:
          - namespaceSelector: {}
        """,
    )
    check_matrix([policy], on_ports(Truth(), "80/TCP"))
    assert "an entry with no selector selects nothing" in _warned([policy])
