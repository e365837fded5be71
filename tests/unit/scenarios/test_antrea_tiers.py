"""Antrea-native policy scenarios (crd.antrea.io/v1beta1) as truth tables.

Sources, restated in our own words on the x/y/z cluster:

* antrea-io/antrea docs/antrea-network-policy.md: static tiers (emergency 50,
  securityops 100, networkops 150, platform 200, application 250 = default,
  baseline 253), "Emergency > SecurityOps > NetworkOps > Platform >
  Application > K8s NetworkPolicy > Baseline", lower ``priority`` first within
  a tier regardless of kind (ACNP vs Antrea NetworkPolicy), rules in written
  order, actions Allow/Drop/Reject/Pass (Pass skips the remaining non-baseline
  Antrea rules and hands over to K8s NetworkPolicy, then to the baseline tier),
  "baseline policies cannot counteract the isolated Pod behavior provided by
  K8s NetworkPolicies", no implicit isolation from appliedTo, a bare
  ``podSelector`` in an ACNP means all namespaces, ClusterGroups (pod and
  namespace selectors, ipBlocks, childGroups), ``namespaces: {match: Self}``.
* antrea-io/antrea test/e2e/antreapolicy_test.go: the tier, priority, rule
  order, baseline, Pass, Reject, ClusterGroup, appliedTo-per-rule, port range
  and ``sameLabels`` tests (names cited on each case).  Upstream probes port 80
  (and uses named port ``serve-81``; our pods call it ``serve-81-tcp``).

Verdicts: Drop is ``drop`` and Reject is ``reject`` in the matrix.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import pytest

from tests.unit.scenarios._harness import (
    ALLOW,
    DROP,
    REJECT,
    Truth,
    check_decision,
    check_matrix,
    explain,
    manifest,
    on_ports,
    pod_ip,
    run_with_input,
)

ANTREA = "crd.antrea.io/v1beta1"


def _doc(api: str, kind: str, name: str, spec: str, namespace: str | None = None) -> str:
    body = textwrap.indent(textwrap.dedent(spec).strip(), "  ")
    ns_line = f"  namespace: {namespace}\n" if namespace else ""
    return f"apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: {name}\n{ns_line}spec:\n{body}\n"


def _with_head(priority: float, tier: str | None, spec: str) -> str:
    head = f"priority: {priority}\n" + (f"tier: {tier}\n" if tier else "")
    return head + textwrap.dedent(spec).strip()


def acnp(name: str, priority: float, spec: str, tier: str | None = None) -> str:
    """An Antrea ClusterNetworkPolicy (no tier = the application tier)."""
    return _doc(ANTREA, "ClusterNetworkPolicy", name, _with_head(priority, tier, spec))


def annp(name: str, namespace: str, priority: float, spec: str, tier: str | None = None) -> str:
    """An Antrea NetworkPolicy (namespaced)."""
    return _doc(ANTREA, "NetworkPolicy", name, _with_head(priority, tier, spec), namespace)


def tier(name: str, priority: int) -> str:
    return _doc(ANTREA, "Tier", name, f"priority: {priority}\ndescription: custom tier {name}")


def cluster_group(name: str, spec: str) -> str:
    return _doc(ANTREA, "ClusterGroup", name, spec)


def netpol(name: str, spec: str, namespace: str = "x") -> str:
    return _doc("networking.k8s.io/v1", "NetworkPolicy", name, spec, namespace)


def default_deny_everywhere() -> list[str]:
    """applyDefaultDenyToAllNamespaces: an ingress default deny in x, y and z."""
    return [
        netpol("default-deny-namespace", "podSelector: {}\npolicyTypes: [Ingress]", ns)
        for ns in ("x", "y", "z")
    ]


# ---------------------------------------------------------------- shared policy sets

# testACNPTierOverride: three tiers, each matching a smaller set of traffic.
TIER_EMERGENCY = acnp(
    "acnp-tier-emergency",
    100,
    """
    appliedTo:
    - podSelector: {matchLabels: {pod: a}}
      namespaceSelector: {matchLabels: {ns: x}}
    ingress:
    - action: Drop
      name: drop-z-b
      from:
      - podSelector: {matchLabels: {pod: b}}
        namespaceSelector: {matchLabels: {ns: z}}
      ports:
      - {protocol: TCP, port: 80}
    """,
    tier="emergency",
)
TIER_SECURITYOPS = acnp(
    "acnp-tier-securityops",
    10,
    """
    appliedTo:
    - podSelector: {matchLabels: {pod: a}}
      namespaceSelector: {matchLabels: {ns: x}}
    ingress:
    - action: Allow
      name: allow-z
      from:
      - namespaceSelector: {matchLabels: {ns: z}}
      ports:
      - {protocol: TCP, port: 80}
    """,
    tier="securityops",
)
TIER_APPLICATION = acnp(
    "acnp-tier-application",
    1,
    """
    appliedTo:
    - namespaceSelector: {matchLabels: {ns: x}}
    ingress:
    - action: Drop
      name: drop-z
      from:
      - namespaceSelector: {matchLabels: {ns: z}}
      ports:
      - {protocol: TCP, port: 80}
    """,
    tier="application",
)
# What the three tiers above leave: z reaches x/a except z/b; z never reaches x/b, x/c.
OVERRIDE_ALL = Truth().drop("z/*", ["x/b", "x/c"]).drop("z/b", "x/a")
OVERRIDE_TWO = Truth().drop("z/*", ["x/b", "x/c"])


def priority_override(p_drop_zb: float, p_allow_z: float, p_drop_z: float) -> list[str]:
    """testACNPPriorityOverride: the same three rules, all in the application tier."""
    return [
        acnp(
            "acnp-priority1",
            p_drop_zb,
            """
            appliedTo:
            - podSelector: {matchLabels: {pod: a}}
              namespaceSelector: {matchLabels: {ns: x}}
            ingress:
            - action: Drop
              from:
              - podSelector: {matchLabels: {pod: b}}
                namespaceSelector: {matchLabels: {ns: z}}
              ports:
              - {protocol: TCP, port: 80}
            """,
        ),
        acnp(
            "acnp-priority2",
            p_allow_z,
            """
            appliedTo:
            - podSelector: {matchLabels: {pod: a}}
              namespaceSelector: {matchLabels: {ns: x}}
            ingress:
            - action: Allow
              from:
              - namespaceSelector: {matchLabels: {ns: z}}
              ports:
              - {protocol: TCP, port: 80}
            """,
        ),
        acnp(
            "acnp-priority3",
            p_drop_z,
            """
            appliedTo:
            - namespaceSelector: {matchLabels: {ns: x}}
            ingress:
            - action: Drop
              from:
              - namespaceSelector: {matchLabels: {ns: z}}
              ports:
              - {protocol: TCP, port: 80}
            """,
        ),
    ]


# Pass in securityops, a K8s NetworkPolicy on x/a, and a baseline rule for y/c.
PASS_CHAIN = [
    acnp(
        "securityops-pass-y",
        1,
        """
        appliedTo:
        - namespaceSelector: {matchLabels: {ns: x}}
        ingress:
        - action: Pass
          name: pass-from-y
          from:
          - namespaceSelector: {matchLabels: {ns: y}}
        - action: Drop
          name: drop-from-all
          from:
          - namespaceSelector: {}
        """,
        tier="securityops",
    ),
    acnp(
        "baseline-drop-y-c",
        1,
        """
        appliedTo:
        - namespaceSelector: {matchLabels: {ns: x}}
        ingress:
        - action: Drop
          name: drop-y-c
          from:
          - namespaceSelector: {matchLabels: {ns: y}}
            podSelector: {matchLabels: {pod: c}}
        """,
        tier="baseline",
    ),
    netpol(
        "allow-y-b-to-x-a",
        """
        podSelector: {matchLabels: {pod: a}}
        policyTypes: [Ingress]
        ingress:
        - from:
          - namespaceSelector: {matchLabels: {ns: y}}
            podSelector: {matchLabels: {pod: b}}
        """,
    ),
]
# x and z are cut off from x by drop-from-all; y is passed: x/a then follows
# its K8s NetworkPolicy (only y/b), x/b and x/c fall to the baseline (not y/c).
PASS_CHAIN_TRUTH = (
    Truth().drop("*", "x/*").allow(["y/a", "y/b"], ["x/b", "x/c"]).allow("y/b", "x/a")
)

REJECT_EGRESS = acnp(
    "acnp-reject-a-to-z-egress",
    1,
    """
    appliedTo:
    - podSelector: {matchLabels: {pod: a}}
    egress:
    - action: Reject
      to:
      - namespaceSelector: {matchLabels: {ns: z}}
      ports:
      - {protocol: TCP, port: 80}
    """,
)

ACNP_ALLOW_Y_TO_XA = """
appliedTo:
- podSelector: {matchLabels: {pod: a}}
  namespaceSelector: {matchLabels: {ns: x}}
ingress:
- action: Allow
  from:
  - namespaceSelector: {matchLabels: {ns: y}}
"""
ANNP_DROP_Y_TO_A = """
appliedTo:
- podSelector: {matchLabels: {pod: a}}
ingress:
- action: Drop
  name: drop-from-y
  from:
  - namespaceSelector: {matchLabels: {ns: y}}
"""

SAME_LABELS_NS = {
    "x": {"ns": "x", "purpose": "test", "tier": "prod"},
    "y": {"ns": "y", "purpose": "test", "tier": "prod"},
    "z": {"ns": "z", "purpose": "test"},
}


@dataclass
class Case:
    id: str
    policies: list[str]
    expected: dict[str, Truth]
    ns_labels: dict[str, dict[str, str]] | None = None


CASES: list[Case] = [
    # testACNPTierOverride ("All three Policies in different tiers"); the
    # port-80 rules leave 81 alone.
    Case(
        "tier-override-three-tiers",
        [TIER_APPLICATION, TIER_EMERGENCY, TIER_SECURITYOPS],
        {"80/TCP": OVERRIDE_ALL, "81/TCP": Truth()},
    ),
    # testACNPTierOverride ("Two Policies in different tiers")
    Case(
        "tier-override-two-tiers",
        [TIER_APPLICATION, TIER_SECURITYOPS],
        on_ports(OVERRIDE_TWO, "80/TCP"),
    ),
    # testACNPPriorityOverride: within one tier the lower number wins.
    Case(
        "priority-override-within-tier",
        priority_override(1.001, 1.002, 1.003),
        on_ports(OVERRIDE_ALL, "80/TCP"),
    ),
    # The same rules with the priorities reversed: the broad Drop comes first.
    Case(
        "priority-reversed-broad-drop-first",
        priority_override(1.003, 1.002, 1.001),
        on_ports(Truth().drop("z/*", "x/*"), "80/TCP"),
    ),
    # testACNPCustomTiers: Tier CRDs at 245 and 246 order like the static ones.
    Case(
        "custom-tiers",
        [
            tier("high-priority", 245),
            tier("low-priority", 246),
            acnp(
                "acnp-tier-low",
                1,
                """
                appliedTo:
                - namespaceSelector: {matchLabels: {ns: x}}
                ingress:
                - action: Drop
                  from:
                  - namespaceSelector: {matchLabels: {ns: z}}
                  ports:
                  - {protocol: TCP, port: 80}
                """,
                tier="low-priority",
            ),
            acnp(
                "acnp-tier-high",
                100,
                """
                appliedTo:
                - podSelector: {matchLabels: {pod: a}}
                  namespaceSelector: {matchLabels: {ns: x}}
                ingress:
                - action: Allow
                  from:
                  - namespaceSelector: {matchLabels: {ns: z}}
                  ports:
                  - {protocol: TCP, port: 80}
                """,
                tier="high-priority",
            ),
        ],
        on_ports(OVERRIDE_TWO, "80/TCP"),
    ),
    # Docs: a custom Tier with a lower priority value than emergency (50) is
    # enforced before it.
    Case(
        "custom-tier-before-emergency",
        [
            tier("first", 10),
            acnp(
                "emergency-drop-z",
                1,
                """
                appliedTo:
                - namespaceSelector: {matchLabels: {ns: x}}
                ingress:
                - action: Drop
                  from:
                  - namespaceSelector: {matchLabels: {ns: z}}
                """,
                tier="emergency",
            ),
            acnp(
                "first-allow-z-to-x-a",
                100,
                """
                appliedTo:
                - podSelector: {matchLabels: {pod: a}}
                  namespaceSelector: {matchLabels: {ns: x}}
                ingress:
                - action: Allow
                  from:
                  - namespaceSelector: {matchLabels: {ns: z}}
                """,
                tier="first",
            ),
        ],
        on_ports(OVERRIDE_TWO, "80/TCP"),
    ),
    # Docs "Rule enforcement based on priorities": rules apply in written order.
    Case(
        "rule-order-within-policy",
        [
            acnp(
                "first-rule-wins",
                1,
                """
                appliedTo:
                - namespaceSelector: {matchLabels: {ns: x}}
                ingress:
                - action: Allow
                  from:
                  - namespaceSelector: {matchLabels: {ns: z}}
                    podSelector: {matchLabels: {pod: a}}
                - action: Drop
                  from:
                  - namespaceSelector: {matchLabels: {ns: z}}
                """,
            )
        ],
        on_ports(Truth().drop(["z/b", "z/c"], "x/*"), "80/TCP"),
    ),
    # testACNPPriorityConflictingRule
    Case(
        "priority-conflicting-rule",
        [
            acnp(
                "acnp-drop",
                1,
                """
                appliedTo:
                - namespaceSelector: {matchLabels: {ns: x}}
                ingress:
                - action: Drop
                  from:
                  - namespaceSelector: {matchLabels: {ns: z}}
                  ports:
                  - {protocol: TCP, port: 80}
                """,
            ),
            acnp(
                "acnp-allow",
                2,
                """
                appliedTo:
                - namespaceSelector: {matchLabels: {ns: x}}
                ingress:
                - action: Allow
                  from:
                  - namespaceSelector: {matchLabels: {ns: z}}
                  ports:
                  - {protocol: TCP, port: 80}
                """,
            ),
        ],
        on_ports(Truth().drop("z/*", "x/*"), "80/TCP"),
    ),
    # testACNPRulePriority: two policies at the same priority; upstream expects
    # rule i of either policy to come before rule i+1 of both.
    Case(
        "same-priority-rules-interleave",
        [
            acnp(
                "acnp-allow",
                5,
                """
                appliedTo:
                - namespaceSelector: {matchLabels: {ns: x}}
                egress:
                - action: Allow
                  to:
                  - namespaceSelector: {matchLabels: {ns: z}}
                  ports:
                  - {protocol: TCP, port: 80}
                - action: Allow
                  to:
                  - namespaceSelector: {matchLabels: {ns: y}}
                  ports:
                  - {protocol: TCP, port: 80}
                """,
            ),
            acnp(
                "acnp-deny",
                5,
                """
                appliedTo:
                - namespaceSelector: {matchLabels: {ns: x}}
                egress:
                - action: Drop
                  to:
                  - namespaceSelector: {matchLabels: {ns: y}}
                  ports:
                  - {protocol: TCP, port: 80}
                - action: Drop
                  to:
                  - namespaceSelector: {matchLabels: {ns: z}}
                  ports:
                  - {protocol: TCP, port: 80}
                """,
            ),
        ],
        on_ports(Truth().drop("x/*", "y/*"), "80/TCP"),
    ),
    # testACNPAllowXBtoA: with a K8s default deny in every namespace, an ACNP
    # Allow (evaluated first) still lets x/b reach every pod a on port 80.
    Case(
        "acnp-allow-before-k8s-default-deny",
        [
            *default_deny_everywhere(),
            acnp(
                "acnp-allow-xb-to-a",
                1,
                """
                appliedTo:
                - podSelector: {matchLabels: {pod: a}}
                ingress:
                - action: Allow
                  from:
                  - podSelector: {matchLabels: {pod: b}}
                    namespaceSelector: {matchLabels: {ns: x}}
                  ports:
                  - {protocol: TCP, port: 80}
                """,
            ),
        ],
        {"80/TCP": Truth(DROP).allow("x/b", "*/a"), "81/TCP": Truth(DROP)},
    ),
    # testANNPBasic ("With K8s NetworkPolicy of the same name"): the Antrea
    # NetworkPolicy Drop comes before the K8s allow; on 81 the K8s policy
    # (port 80 only) isolates y/a.
    Case(
        "annp-drop-before-k8s-allow",
        [
            annp(
                "np-same-name",
                "y",
                1,
                """
                appliedTo:
                - podSelector: {matchLabels: {pod: a}}
                ingress:
                - action: Drop
                  from:
                  - podSelector: {matchLabels: {pod: b}}
                    namespaceSelector: {matchLabels: {ns: x}}
                  ports:
                  - {protocol: TCP, port: 80}
                """,
            ),
            netpol(
                "np-same-name",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Ingress]
                ingress:
                - ports:
                  - {protocol: TCP, port: 80}
                """,
                namespace="y",
            ),
        ],
        {"80/TCP": Truth().drop("x/b", "y/a"), "81/TCP": Truth().drop("*", "y/a")},
    ),
    # testBaselineNamespaceIsolation, step 1: the baseline tier alone.
    Case(
        "baseline-namespace-isolation",
        [
            acnp(
                "acnp-baseline-isolate-ns-x",
                1,
                """
                appliedTo:
                - namespaceSelector: {matchLabels: {ns: x}}
                ingress:
                - action: Drop
                  from:
                  - namespaceSelector:
                      matchExpressions:
                      - {key: ns, operator: NotIn, values: [x]}
                  ports:
                  - {protocol: TCP, port: 80}
                """,
                tier="baseline",
            )
        ],
        {"80/TCP": Truth().drop(["y/*", "z/*"], "x/*"), "81/TCP": Truth()},
    ),
    # ... step 2: a K8s NetworkPolicy on x/a allowing y/a is evaluated before
    # the baseline and isolates x/a from everything else.
    Case(
        "baseline-namespace-isolation-with-k8s-np",
        [
            acnp(
                "acnp-baseline-isolate-ns-x",
                1,
                """
                appliedTo:
                - namespaceSelector: {matchLabels: {ns: x}}
                ingress:
                - action: Drop
                  from:
                  - namespaceSelector:
                      matchExpressions:
                      - {key: ns, operator: NotIn, values: [x]}
                  ports:
                  - {protocol: TCP, port: 80}
                """,
                tier="baseline",
            ),
            netpol(
                "allow-y-a-to-x-a",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Ingress]
                ingress:
                - from:
                  - podSelector: {matchLabels: {pod: a}}
                    namespaceSelector: {matchLabels: {ns: y}}
                  ports:
                  - {protocol: TCP, port: 80}
                """,
            ),
        ],
        on_ports(
            Truth().drop(["y/*", "z/*"], "x/*").drop(["x/b", "x/c"], "x/a").allow("y/a", "x/a"),
            "80/TCP",
        ),
    ),
    # Docs: a baseline Allow cannot undo K8s NetworkPolicy isolation.
    Case(
        "baseline-allow-cannot-undo-k8s-isolation",
        [
            netpol("deny-ingress", "podSelector: {}\npolicyTypes: [Ingress]"),
            acnp(
                "baseline-allow-y",
                1,
                """
                appliedTo:
                - namespaceSelector: {matchLabels: {ns: x}}
                ingress:
                - action: Allow
                  from:
                  - namespaceSelector: {matchLabels: {ns: y}}
                """,
                tier="baseline",
            ),
        ],
        on_ports(Truth().drop("*", "x/*"), "80/TCP"),
    ),
    # K8s isolation is per direction: a K8s policy that only isolates x/a for
    # ingress leaves its egress to the baseline tier.
    Case(
        "baseline-egress-applies-under-ingress-only-k8s-np",
        [
            acnp(
                "baseline-drop-x-to-z",
                1,
                """
                appliedTo:
                - namespaceSelector: {matchLabels: {ns: x}}
                egress:
                - action: Drop
                  to:
                  - namespaceSelector: {matchLabels: {ns: z}}
                """,
                tier="baseline",
            ),
            netpol(
                "x-a-from-y",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Ingress]
                ingress:
                - from:
                  - namespaceSelector: {matchLabels: {ns: y}}
                """,
            ),
        ],
        on_ports(Truth().drop("*", "x/a").allow("y/*", "x/a").drop("x/*", "z/*"), "80/TCP"),
    ),
    # testACNPNamespaceIsolation, "all namespaces": baseline Allow from Self,
    # then Drop from everywhere; both rules are TCP-only.
    Case(
        "baseline-self-namespace-isolation",
        [
            acnp(
                "test-acnp-ns-isolation",
                1,
                """
                appliedTo:
                - namespaceSelector: {}
                ingress:
                - action: Allow
                  from:
                  - namespaces: {match: Self}
                  ports:
                  - protocol: TCP
                - action: Drop
                  from:
                  - namespaceSelector: {}
                  ports:
                  - protocol: TCP
                """,
                tier="baseline",
            )
        ],
        {"80/TCP": Truth(DROP).same_namespace(ALLOW), "80/UDP": Truth()},
    ),
    # testACNPNamespaceIsolation, "namespace x": egress rules with appliedTo
    # per rule instead of at the policy level.
    Case(
        "baseline-egress-isolation-applied-to-per-rule",
        [
            acnp(
                "test-acnp-ns-isolation-applied-to-per-rule",
                1,
                """
                egress:
                - action: Allow
                  appliedTo:
                  - namespaceSelector: {matchLabels: {ns: x}}
                  to:
                  - namespaces: {match: Self}
                  ports:
                  - protocol: TCP
                - action: Drop
                  appliedTo:
                  - namespaceSelector: {matchLabels: {ns: x}}
                  to:
                  - namespaceSelector: {}
                  ports:
                  - protocol: TCP
                """,
                tier="baseline",
            )
        ],
        on_ports(Truth().drop("x/*", ["y/*", "z/*"]), "80/TCP"),
    ),
    # testACNPStrictNamespacesIsolation, step 1: Pass within the namespace,
    # Drop across namespaces (securityops).
    Case(
        "strict-namespace-isolation-pass",
        [
            acnp(
                "test-acnp-strict-ns-isolation",
                1,
                """
                appliedTo:
                - namespaceSelector: {}
                ingress:
                - action: Pass
                  from:
                  - namespaces: {match: Self}
                  ports:
                  - protocol: TCP
                - action: Drop
                  from:
                  - namespaceSelector: {}
                  ports:
                  - protocol: TCP
                """,
                tier="securityops",
            )
        ],
        on_ports(Truth(DROP).same_namespace(ALLOW), "80/TCP"),
    ),
    # ... step 2: the passed intra-namespace traffic of x meets a K8s default deny.
    Case(
        "strict-namespace-isolation-pass-then-k8s-deny",
        [
            acnp(
                "test-acnp-strict-ns-isolation",
                1,
                """
                appliedTo:
                - namespaceSelector: {}
                ingress:
                - action: Pass
                  from:
                  - namespaces: {match: Self}
                  ports:
                  - protocol: TCP
                - action: Drop
                  from:
                  - namespaceSelector: {}
                  ports:
                  - protocol: TCP
                """,
                tier="securityops",
            ),
            netpol("default-deny-in-namespace-x", "podSelector: {}\npolicyTypes: [Ingress]"),
        ],
        on_ports(Truth(DROP).same_namespace(ALLOW).drop("x/*", "x/*"), "80/TCP"),
    ),
    # Docs (Pass): after a Pass, K8s NetworkPolicy decides for the pods it
    # selects (x/a) and the baseline tier for the others (x/b, x/c).
    Case("pass-to-k8s-np-then-baseline", PASS_CHAIN, on_ports(PASS_CHAIN_TRUTH, "80/TCP")),
    # testACNPStrictNamespacesIsolationByLabels: sameLabels passes only between
    # namespaces sharing purpose AND tier; z lacks "tier", so the Pass rule
    # never matches for it (not even within z) and the Drop rule applies.
    Case(
        "namespaces-same-labels",
        [
            acnp(
                "test-acnp-strict-ns-isolation-by-labels",
                1,
                """
                appliedTo:
                - namespaceSelector: {}
                ingress:
                - action: Pass
                  from:
                  - namespaces:
                      sameLabels: [purpose, tier]
                  ports:
                  - protocol: TCP
                - action: Drop
                  from:
                  - namespaceSelector: {}
                  ports:
                  - protocol: TCP
                """,
                tier="securityops",
            )
        ],
        on_ports(Truth(DROP).allow(["x/*", "y/*"], ["x/*", "y/*"]), "80/TCP"),
        ns_labels=SAME_LABELS_NS,
    ),
    # Docs "Selecting Pods in the same Namespace with Self": allow-self-ns plus
    # deny-self-ns-a-to-b leaves x/a able to reach only x/c (and so on for y, z).
    Case(
        "namespaces-match-self",
        [
            acnp(
                "allow-self-ns",
                1,
                """
                appliedTo:
                - namespaceSelector: {}
                ingress:
                - action: Allow
                  from:
                  - namespaces: {match: Self}
                - action: Drop
                egress:
                - action: Allow
                  to:
                  - namespaces: {match: Self}
                - action: Drop
                """,
                tier="platform",
            ),
            acnp(
                "deny-self-ns-a-to-b",
                1,
                """
                appliedTo:
                - namespaceSelector: {}
                  podSelector: {matchLabels: {pod: b}}
                ingress:
                - action: Drop
                  from:
                  - namespaces: {match: Self}
                    podSelector: {matchLabels: {pod: a}}
                """,
                tier="securityops",
            ),
        ],
        on_ports(
            Truth(DROP)
            .same_namespace(ALLOW)
            .drop("x/a", "x/b")
            .drop("y/a", "y/b")
            .drop("z/a", "z/b"),
            "80/TCP",
        ),
    ),
    # testACNPRejectEgress
    Case(
        "reject-egress",
        [REJECT_EGRESS],
        {
            "80/TCP": Truth().reject(["x/a", "y/a", "z/a"], "z/*"),
            "81/TCP": Truth(),
        },
    ),
    # testACNPRejectIngress
    Case(
        "reject-ingress",
        [
            acnp(
                "acnp-reject-a-from-z-ingress",
                1,
                """
                appliedTo:
                - podSelector: {matchLabels: {pod: a}}
                ingress:
                - action: Reject
                  from:
                  - namespaceSelector: {matchLabels: {ns: z}}
                  ports:
                  - {protocol: TCP, port: 80}
                """,
            )
        ],
        on_ports(Truth().reject("z/*", "*/a"), "80/TCP"),
    ),
    # testACNPAppliedToDenyXBtoCGWithYA: a ClusterGroup (pod and namespace
    # selectors) as appliedTo, with a named port.
    Case(
        "clustergroup-applied-to-named-port",
        [
            acnp(
                "acnp-deny-cg-with-ya-from-xb",
                2,
                """
                appliedTo:
                - group: cg-pods-ya
                ingress:
                - action: Drop
                  from:
                  - podSelector: {matchLabels: {pod: b}}
                    namespaceSelector: {matchLabels: {ns: x}}
                  ports:
                  - {protocol: TCP, port: serve-81-tcp}
                """,
            ),
            cluster_group(
                "cg-pods-ya",
                """
                namespaceSelector: {matchLabels: {ns: y}}
                podSelector: {matchLabels: {pod: a}}
                """,
            ),
        ],
        {"81/TCP": Truth().drop("x/b", "y/a"), "80/TCP": Truth(), "81/UDP": Truth()},
    ),
    # testACNPClusterGroupRefRuleIPBlocks
    Case(
        "clustergroup-ipblocks",
        [
            cluster_group(
                "cg-ipblocks-pod-in-ns-x",
                f"""
                ipBlocks:
                - cidr: {pod_ip("x/a")}/32
                - cidr: {pod_ip("x/b")}/32
                - cidr: {pod_ip("x/c")}/32
                """,
            ),
            cluster_group("cg-ipblock-pod-za", f"ipBlocks:\n- cidr: {pod_ip('z/a')}/32"),
            acnp(
                "acnp-deny-x-ips-ingress-for-ya",
                1,
                """
                appliedTo:
                - podSelector: {matchLabels: {pod: a}}
                  namespaceSelector: {matchLabels: {ns: y}}
                ingress:
                - action: Drop
                  from:
                  - group: cg-ipblocks-pod-in-ns-x
                  ports:
                  - {protocol: TCP, port: 80}
                - action: Drop
                  from:
                  - group: cg-ipblock-pod-za
                  ports:
                  - {protocol: TCP, port: 80}
                """,
            ),
        ],
        on_ports(Truth().drop(["x/*", "z/a"], "y/a"), "80/TCP"),
    ),
    # testACNPNestedIPBlockClusterGroupCreateAndUpdate (updated step): a parent
    # group whose children are an ipBlocks group and a selector group.
    Case(
        "clustergroup-child-groups",
        [
            cluster_group("cg-x-a-ipb", f"ipBlocks:\n- cidr: {pod_ip('x/a')}/32"),
            cluster_group(
                "cg-select-x-c",
                """
                namespaceSelector: {matchLabels: {ns: x}}
                podSelector: {matchLabels: {pod: c}}
                """,
            ),
            cluster_group("cg-parent", "childGroups: [cg-x-a-ipb, cg-select-x-c]"),
            acnp(
                "acnp-deny-x-ips-ingress-for-ya",
                1,
                """
                appliedTo:
                - podSelector: {matchLabels: {pod: a}}
                  namespaceSelector: {matchLabels: {ns: y}}
                ingress:
                - action: Drop
                  from:
                  - group: cg-parent
                  ports:
                  - {protocol: TCP, port: 80}
                """,
            ),
        ],
        on_ports(Truth().drop(["x/a", "x/c"], "y/a"), "80/TCP"),
    ),
    # testACNPEgressRulePodsAToCGWithNsZ: a namespace-only ClusterGroup as peer.
    Case(
        "clustergroup-namespace-selector-peer",
        [
            cluster_group("cg-ns-z", "namespaceSelector: {matchLabels: {ns: z}}"),
            acnp(
                "acnp-deny-a-to-cg-with-z-egress",
                1,
                """
                appliedTo:
                - podSelector: {matchLabels: {pod: a}}
                egress:
                - action: Drop
                  to:
                  - group: cg-ns-z
                  ports:
                  - {protocol: TCP, port: 80}
                """,
            ),
        ],
        on_ports(Truth().drop("*/a", "z/*"), "80/TCP"),
    ),
    # testACNPDropEgress / testACNPNoEffectOnOtherProtocols: an appliedTo
    # podSelector alone spans all namespaces; a TCP rule leaves UDP alone.
    Case(
        "acnp-podselector-spans-namespaces",
        [
            acnp(
                "acnp-deny-a-to-z-egress",
                1,
                """
                appliedTo:
                - podSelector: {matchLabels: {pod: a}}
                egress:
                - action: Drop
                  to:
                  - namespaceSelector: {matchLabels: {ns: z}}
                  ports:
                  - {protocol: TCP, port: 80}
                """,
            )
        ],
        {"80/TCP": Truth().drop("*/a", "z/*"), "80/UDP": Truth()},
    ),
    # Docs "Behavior of to and from selectors": a peer podSelector alone in an
    # ACNP selects pods in every namespace ...
    Case(
        "acnp-peer-podselector-spans-namespaces",
        [
            acnp(
                "drop-any-b-into-x",
                1,
                """
                appliedTo:
                - namespaceSelector: {matchLabels: {ns: x}}
                ingress:
                - action: Drop
                  from:
                  - podSelector: {matchLabels: {pod: b}}
                """,
            )
        ],
        on_ports(Truth().drop("*/b", "x/*"), "80/TCP"),
    ),
    # ... while in an Antrea NetworkPolicy it means the policy's namespace.
    Case(
        "annp-peer-podselector-own-namespace",
        [
            annp(
                "drop-local-b",
                "x",
                1,
                """
                appliedTo:
                - podSelector: {}
                ingress:
                - action: Drop
                  from:
                  - podSelector: {matchLabels: {pod: b}}
                """,
            )
        ],
        on_ports(Truth().drop("x/b", "x/*"), "80/TCP"),
    ),
    # testACNPPortRange with our ports: endPort makes 80..81 one range.
    Case(
        "acnp-endport-range",
        [
            acnp(
                "acnp-deny-a-to-z-egress-port-range",
                1,
                """
                appliedTo:
                - podSelector: {matchLabels: {pod: a}}
                egress:
                - action: Drop
                  name: acnp-port-range
                  to:
                  - namespaceSelector: {matchLabels: {ns: z}}
                  ports:
                  - {protocol: TCP, port: 80, endPort: 81}
                """,
            )
        ],
        {
            "80/TCP": Truth().drop("*/a", "z/*"),
            "81/TCP": Truth().drop("*/a", "z/*"),
            "81/UDP": Truth(),
        },
    ),
    # testAppliedToPerRule (ACNP)
    Case(
        "acnp-applied-to-per-rule",
        [
            acnp(
                "cnp1",
                1,
                """
                ingress:
                - action: Drop
                  appliedTo:
                  - podSelector: {matchLabels: {pod: a}}
                  from:
                  - podSelector: {matchLabels: {pod: b}}
                    namespaceSelector: {matchLabels: {ns: x}}
                  ports:
                  - {protocol: TCP, port: 80}
                - action: Drop
                  appliedTo:
                  - podSelector: {matchLabels: {pod: b}}
                    namespaceSelector: {matchLabels: {ns: y}}
                  from:
                  - podSelector: {matchLabels: {pod: b}}
                    namespaceSelector: {matchLabels: {ns: z}}
                  ports:
                  - {protocol: TCP, port: 80}
                """,
            )
        ],
        on_ports(Truth().drop("x/b", "*/a").drop("z/b", "y/b"), "80/TCP"),
    ),
    # testAppliedToPerRule (Antrea NetworkPolicy in y)
    Case(
        "annp-applied-to-per-rule",
        [
            annp(
                "np1",
                "y",
                1,
                """
                ingress:
                - action: Drop
                  appliedTo:
                  - podSelector: {matchLabels: {pod: a}}
                  from:
                  - podSelector: {matchLabels: {pod: b}}
                    namespaceSelector: {matchLabels: {ns: x}}
                  ports:
                  - {protocol: TCP, port: 80}
                - action: Drop
                  appliedTo:
                  - podSelector: {matchLabels: {pod: b}}
                  from:
                  - podSelector: {matchLabels: {pod: b}}
                    namespaceSelector: {matchLabels: {ns: z}}
                  ports:
                  - {protocol: TCP, port: 80}
                """,
            )
        ],
        on_ports(Truth().drop("x/b", "y/a").drop("z/b", "y/b"), "80/TCP"),
    ),
    # testACNPDropIPBlockWithExcept: drop everything from y/a except to x/a, x/b ...
    Case(
        "acnp-ipblock-except",
        [
            acnp(
                "acnp-drop-all-egress-from-ya-except-xa-xb-ip",
                1,
                f"""
                appliedTo:
                - podSelector: {{matchLabels: {{pod: a}}}}
                  namespaceSelector: {{matchLabels: {{ns: y}}}}
                egress:
                - action: Drop
                  name: egress-drop-0
                  to:
                  - ipBlock:
                      cidr: 0.0.0.0/0
                      except: [{pod_ip("x/a")}/32, {pod_ip("x/b")}/32]
                  ports:
                  - {{protocol: TCP, port: 80}}
                """,
            )
        ],
        on_ports(Truth().drop("y/a", "*").allow("y/a", ["x/a", "x/b"]), "80/TCP"),
    ),
    # ... and a lower-precedence Drop can still catch an excepted address.
    Case(
        "acnp-ipblock-except-then-lower-drop",
        [
            acnp(
                "acnp-drop-all-egress-from-ya-except-xa-xb-ip",
                1,
                f"""
                appliedTo:
                - podSelector: {{matchLabels: {{pod: a}}}}
                  namespaceSelector: {{matchLabels: {{ns: y}}}}
                egress:
                - action: Drop
                  name: egress-drop-0
                  to:
                  - ipBlock:
                      cidr: 0.0.0.0/0
                      except: [{pod_ip("x/a")}/32, {pod_ip("x/b")}/32]
                  ports:
                  - {{protocol: TCP, port: 80}}
                """,
            ),
            acnp(
                "acnp-drop-egress-from-ya-to-xa",
                2,
                """
                appliedTo:
                - podSelector: {matchLabels: {pod: a}}
                  namespaceSelector: {matchLabels: {ns: y}}
                egress:
                - action: Drop
                  name: egress-drop-xa
                  to:
                  - podSelector: {matchLabels: {pod: a}}
                    namespaceSelector: {matchLabels: {ns: x}}
                  ports:
                  - {protocol: TCP, port: 80}
                """,
            ),
        ],
        on_ports(Truth().drop("y/a", "*").allow("y/a", "x/b"), "80/TCP"),
    ),
    # Docs "Ordering based on policy priority": ACNP and Antrea NetworkPolicy
    # in one tier are ordered by priority only (the ANNP at 3 wins) ...
    Case(
        "annp-before-acnp-by-priority",
        [
            acnp("acnp-allow-y", 5, ACNP_ALLOW_Y_TO_XA),
            annp("annp-drop-y", "x", 3, ANNP_DROP_Y_TO_A),
        ],
        on_ports(Truth().drop("y/*", "x/a"), "80/TCP"),
    ),
    # ... and with the numbers swapped the ACNP Allow wins.
    Case(
        "acnp-before-annp-by-priority",
        [
            acnp("acnp-allow-y", 3, ACNP_ALLOW_Y_TO_XA),
            annp("annp-drop-y", "x", 5, ANNP_DROP_Y_TO_A),
        ],
        on_ports(Truth(), "80/TCP"),
    ),
    # testACNPAllowNoDefaultIsolation: Allow rules isolate nothing.
    Case(
        "allow-rules-do-not-isolate",
        [
            acnp(
                "acnp-allow-x-ingress-y-egress-z",
                1.1,
                """
                appliedTo:
                - namespaceSelector: {matchLabels: {ns: x}}
                ingress:
                - action: Allow
                  from:
                  - namespaceSelector: {matchLabels: {ns: y}}
                  ports:
                  - {protocol: TCP, port: 81}
                egress:
                - action: Allow
                  to:
                  - namespaceSelector: {matchLabels: {ns: z}}
                  ports:
                  - {protocol: TCP, port: 81}
                """,
            )
        ],
        on_ports(Truth(), "81/TCP", "80/TCP"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_antrea_truth_table(case: Case) -> None:
    check_matrix(case.policies, case.expected, case.ns_labels)


# ---------------------------------------------------------------- explain


@pytest.mark.parametrize(
    ("src", "verdict", "name", "tier_name", "action"),
    [
        ("z/b", DROP, "acnp-tier-emergency", "emergency", "Drop"),
        ("z/a", ALLOW, "acnp-tier-securityops", "securityops", "Allow"),
    ],
)
def test_explain_tier_override_to_x_a(
    src: str, verdict: str, name: str, tier_name: str, action: str
) -> None:
    """testACNPTierOverride's NPEvaluation: who decides z/* -> x/a."""
    result = explain([TIER_APPLICATION, TIER_EMERGENCY, TIER_SECURITYOPS], src, "x/a", "80/TCP")
    assert result["verdict"] == verdict
    check_decision(
        result,
        "ingress",
        verdict=verdict,
        name=name,
        kind_contains="ClusterNetworkPolicy",
        tier=tier_name,
        rule_index=0,
        rule_action=action,
    )


def test_explain_tier_override_application_drop() -> None:
    result = explain([TIER_APPLICATION, TIER_EMERGENCY, TIER_SECURITYOPS], "z/a", "x/b", "80/TCP")
    assert result["verdict"] == DROP
    check_decision(
        result,
        "ingress",
        verdict=DROP,
        name="acnp-tier-application",
        tier="application",
        rule_index=0,
        rule_action="Drop",
    )


def test_explain_reject_egress() -> None:
    result = explain([REJECT_EGRESS], "x/a", "z/b", "80/TCP")
    assert result["verdict"] == REJECT
    check_decision(
        result,
        "egress",
        verdict=REJECT,
        name="acnp-reject-a-to-z-egress",
        tier="application",
        rule_index=0,
        rule_action="Reject",
    )


def test_explain_pass_chain_baseline_decides() -> None:
    result = explain(PASS_CHAIN, "y/c", "x/b", "80/TCP")
    assert result["verdict"] == DROP
    check_decision(
        result,
        "ingress",
        verdict=DROP,
        name="baseline-drop-y-c",
        tier="baseline",
        rule_index=0,
        rule_action="Drop",
    )


def test_explain_pass_chain_k8s_np_decides() -> None:
    result = explain(PASS_CHAIN, "y/b", "x/a", "80/TCP")
    assert result["verdict"] == ALLOW
    check_decision(result, "ingress", verdict=ALLOW, name="allow-y-b-to-x-a", namespace="x")


def test_explain_pass_chain_second_rule_drops() -> None:
    result = explain(PASS_CHAIN, "z/a", "x/a", "80/TCP")
    assert result["verdict"] == DROP
    check_decision(
        result,
        "ingress",
        verdict=DROP,
        name="securityops-pass-y",
        tier="securityops",
        rule_index=1,
        rule_action="Drop",
    )
    assert result["ingress"]["rule"]["name"] == "drop-from-all"


def test_explain_annp_wins_on_priority() -> None:
    policies = [
        acnp("acnp-allow-y", 5, ACNP_ALLOW_Y_TO_XA),
        annp("annp-drop-y", "x", 3, ANNP_DROP_Y_TO_A),
    ]
    result = explain(policies, "y/a", "x/a", "80/TCP")
    assert result["verdict"] == DROP
    check_decision(
        result,
        "ingress",
        verdict=DROP,
        name="annp-drop-y",
        namespace="x",
        kind_contains="NetworkPolicy",
        tier="application",
        rule_index=0,
        rule_action="Drop",
    )


BAD_INPUTS = {
    # testCreateValidationInvalidACNP: a policy may not name a Tier that does not exist.
    "acnp-unknown-tier": acnp(
        "acnp-non-exist-tier",
        1,
        """
        appliedTo:
        - podSelector: {matchLabels: {pod: a}}
        ingress:
        - action: Drop
        """,
        tier="no-exist",
    ),
    # testUpdateValidationInvalidACNP: appliedTo at policy level and rule level together.
    "acnp-applied-to-both-levels": acnp(
        "acnp-applied-to-update",
        1,
        """
        appliedTo:
        - podSelector: {matchLabels: {pod: a}}
        ingress:
        - action: Allow
          appliedTo:
          - podSelector: {matchLabels: {pod: b}}
          from:
          - podSelector: {matchLabels: {pod: c}}
        """,
    ),
    # Docs: custom Tier priorities of 250 and above are reserved (251 clashes with no tier).
    "custom-tier-priority-251": tier("too-late", 251),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_invalid_antrea_policy_exits_1(name: str) -> None:
    rc, _out, _err = run_with_input(
        manifest([BAD_INPUTS[name]]), "matrix", ["--port", "80/TCP", "-o", "json"]
    )
    assert rc == 1
