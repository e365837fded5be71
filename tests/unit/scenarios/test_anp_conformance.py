"""AdminNetworkPolicy API scenarios (kubernetes-sigs/network-policy-api).

Two API generations are covered, each in its own words on the x/y/z cluster:

* ``policy.networking.k8s.io/v1alpha1`` AdminNetworkPolicy (ANP) and
  BaselineAdminNetworkPolicy (BANP), field shapes from apis/v1alpha1
  (adminnetworkpolicy_types.go, shared_types.go): ``subject.namespaces`` or
  ``subject.pods{namespaceSelector,podSelector}``; peers ``namespaces`` /
  ``pods`` (egress also ``networks``); ``ports`` entries with exactly one of
  ``portNumber{protocol,port}``, ``namedPort`` or
  ``portRange{protocol,start,end}``; ANP actions Allow/Deny/Pass, BANP
  Allow/Deny; BANP must be named ``default``.
* ``policy.networking.k8s.io/v1alpha2`` ClusterNetworkPolicy, field shapes from
  apis/v1alpha2/clusternetworkpolicy_types.go: ``spec.tier`` Admin|Baseline,
  ``spec.priority`` 0..1000, actions Accept/Deny/Pass, and ``protocols``
  entries with exactly one of ``tcp``/``udp``/``sctp``
  ``{destinationPort: {number} | {range: {start, end}}}`` or
  ``destinationNamedPort``.

The scenarios restate the conformance suite (conformance/tests/*.go with the
manifests under conformance/base/): priority ordering, rule order, Pass
handing over to NetworkPolicy and then to the baseline, and the baseline
yielding to any NetworkPolicy that selects the pod.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import pytest

from tests.unit.scenarios._harness import (
    ALLOW,
    DROP,
    Truth,
    check_decision,
    check_matrix,
    explain,
    manifest,
    on_ports,
    run_with_input,
)


def _doc(api: str, kind: str, name: str, spec: str, namespace: str | None = None) -> str:
    body = textwrap.indent(textwrap.dedent(spec).strip(), "  ")
    ns_line = f"  namespace: {namespace}\n" if namespace else ""
    return f"apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: {name}\n{ns_line}spec:\n{body}\n"


def anp(name: str, priority: int, spec: str) -> str:
    """A v1alpha1 AdminNetworkPolicy; ``spec`` is everything but the priority."""
    body = f"priority: {priority}\n" + textwrap.dedent(spec).strip()
    return _doc("policy.networking.k8s.io/v1alpha1", "AdminNetworkPolicy", name, body)


def banp(spec: str, name: str = "default") -> str:
    """The v1alpha1 BaselineAdminNetworkPolicy (a singleton named ``default``)."""
    return _doc("policy.networking.k8s.io/v1alpha1", "BaselineAdminNetworkPolicy", name, spec)


def cnp(name: str, tier: str, priority: int, spec: str) -> str:
    """A v1alpha2 ClusterNetworkPolicy."""
    body = f"tier: {tier}\npriority: {priority}\n" + textwrap.dedent(spec).strip()
    return _doc("policy.networking.k8s.io/v1alpha2", "ClusterNetworkPolicy", name, body)


def netpol(name: str, spec: str, namespace: str = "x") -> str:
    return _doc("networking.k8s.io/v1", "NetworkPolicy", name, spec, namespace)


SUBJECT_X = "subject:\n  namespaces: {matchLabels: {ns: x}}"


def subject_x(rules: str) -> str:
    """A spec body selecting every pod of x, followed by ``rules``."""
    return SUBJECT_X + "\n" + textwrap.dedent(rules).strip()


def gress_with_y(action: str) -> str:
    """Ingress from y and egress to y for every pod of x, all with ``action``.

    The shape of the conformance manifests (gryffindor = x, slytherin = y).
    """
    lc = action.lower()
    return subject_x(
        f"""
        ingress:
        - name: {lc}-all-ingress-from-y
          action: {action}
          from:
          - namespaces: {{matchLabels: {{ns: y}}}}
        egress:
        - name: {lc}-all-egress-to-y
          action: {action}
          to:
          - namespaces: {{matchLabels: {{ns: y}}}}
        """
    )


# A NetworkPolicy that isolates every pod of x both ways and lets only y in and out.
NP_X_ONLY_WITH_Y = netpol(
    "allow-gress-from-to-y",
    """
    podSelector: {}
    policyTypes: [Ingress, Egress]
    ingress:
    - from:
      - namespaceSelector: {matchLabels: {ns: y}}
    egress:
    - to:
      - namespaceSelector: {matchLabels: {ns: y}}
    """,
)

NP_DENY_INGRESS_X = netpol(
    "deny-ingress",
    """
    podSelector: {}
    policyTypes: [Ingress]
    """,
)

# Expected tables shared by both API generations.
Y_X_CUT_BOTH_WAYS = Truth().drop("y/*", "x/*").drop("x/*", "y/*")
# Pass handed to NP_X_ONLY_WITH_Y: x talks only with y, both directions.
X_ONLY_WITH_Y = Truth.grid(
    """
          x/a x/b x/c y/a y/b y/c z/a z/b z/c
    x/a    -   X   X   .   .   .   X   X   X
    x/b    X   -   X   .   .   .   X   X   X
    x/c    X   X   -   .   .   .   X   X   X
    y/a    .   .   .   -   .   .   .   .   .
    y/b    .   .   .   .   -   .   .   .   .
    y/c    .   .   .   .   .   -   .   .   .
    z/a    X   X   X   .   .   .   -   .   .
    z/b    X   X   X   .   .   .   .   -   .
    z/c    X   X   X   .   .   .   .   .   -
    """
)
# A baseline deny from y into x, overridden for x/a by a NetworkPolicy from y.
BASELINE_DENY_NP_ON_XA = Truth().drop("*", "x/a").allow("y/*", "x/a").drop("y/*", ["x/b", "x/c"])


@dataclass
class Case:
    id: str
    policies: list[str]
    expected: dict[str, Truth]


V1ALPHA1_CASES: list[Case] = [
    Case(
        "anp-deny-ingress-from-namespace",
        [
            anp(
                "deny-y-to-x",
                10,
                subject_x("""
                ingress:
                - name: deny-from-y
                  action: Deny
                  from:
                  - namespaces: {matchLabels: {ns: y}}
                """),
            )
        ],
        on_ports(Truth().drop("y/*", "x/*"), "80/TCP", "81/UDP", "80/SCTP"),
    ),
    # ANP Allow wins over a NetworkPolicy that would drop the traffic.
    Case(
        "anp-allow-overrides-networkpolicy-deny",
        [
            NP_DENY_INGRESS_X,
            anp(
                "allow-y-to-x",
                10,
                subject_x("""
                ingress:
                - name: allow-from-y
                  action: Allow
                  from:
                  - namespaces: {matchLabels: {ns: y}}
                """),
            ),
        ],
        on_ports(Truth().drop("*", "x/*").allow("y/*", "x/*"), "80/TCP"),
    ),
    # ANP Deny wins over a NetworkPolicy allow-all.
    Case(
        "anp-deny-overrides-networkpolicy-allow",
        [
            netpol(
                "allow-all",
                """
                podSelector: {}
                policyTypes: [Ingress]
                ingress:
                - {}
                """,
            ),
            anp(
                "deny-y-to-x",
                10,
                subject_x("""
                ingress:
                - name: deny-from-y
                  action: Deny
                  from:
                  - namespaces: {matchLabels: {ns: y}}
                """),
            ),
        ],
        on_ports(Truth().drop("y/*", "x/*"), "80/TCP"),
    ),
    # AdminNetworkPolicyPriorityField, first half: Deny at 50 beats Pass at 60.
    Case(
        "priority-deny-50-beats-pass-60",
        [
            anp("priority-50-example", 50, gress_with_y("Deny")),
            anp("old-priority-60-new-priority-40-example", 60, gress_with_y("Pass")),
            banp(gress_with_y("Allow")),
        ],
        on_ports(Y_X_CUT_BOTH_WAYS, "80/TCP"),
    ),
    # ... second half: once the Pass policy is at 40 it comes first and the
    # BANP Allow decides.
    Case(
        "priority-pass-40-beats-deny-50-then-banp-allow",
        [
            anp("priority-50-example", 50, gress_with_y("Deny")),
            anp("old-priority-60-new-priority-40-example", 40, gress_with_y("Pass")),
            banp(gress_with_y("Allow")),
        ],
        on_ports(Truth(), "80/TCP"),
    ),
    # Core integration test: the Deny variant beats the NetworkPolicy allow,
    # and that NetworkPolicy still isolates x from everything else.
    Case(
        "integration-anp-deny-np-banp",
        [
            anp("pass-example", 10, gress_with_y("Deny")),
            NP_X_ONLY_WITH_Y,
            banp(gress_with_y("Deny")),
        ],
        on_ports(Truth().drop("*", "x/*").drop("x/*", "*"), "80/TCP"),
    ),
    # ... "Should support a 'pass-ingress'/'pass-egress' policy for ANP and
    # respect the match for network policy".
    Case(
        "integration-anp-pass-to-networkpolicy",
        [
            anp("pass-example", 10, gress_with_y("Pass")),
            NP_X_ONLY_WITH_Y,
            banp(gress_with_y("Deny")),
        ],
        on_ports(X_ONLY_WITH_Y, "80/TCP"),
    ),
    # ... and with the NetworkPolicy deleted, Pass reaches the BANP Deny.
    Case(
        "integration-anp-pass-to-banp",
        [anp("pass-example", 10, gress_with_y("Pass")), banp(gress_with_y("Deny"))],
        on_ports(Y_X_CUT_BOTH_WAYS, "80/TCP"),
    ),
    # Rules of one ANP apply in the order written.
    Case(
        "rule-order-within-anp",
        [
            anp(
                "first-match-wins",
                10,
                subject_x("""
                ingress:
                - name: allow-from-y-a
                  action: Allow
                  from:
                  - pods:
                      namespaceSelector: {matchLabels: {ns: y}}
                      podSelector: {matchLabels: {pod: a}}
                - name: deny-from-y
                  action: Deny
                  from:
                  - namespaces: {matchLabels: {ns: y}}
                """),
            )
        ],
        on_ports(Truth().drop(["y/b", "y/c"], "x/*"), "80/TCP"),
    ),
    # A lower priority number is evaluated first, whatever the document order.
    Case(
        "lower-priority-number-first",
        [
            anp(
                "deny-y-at-20",
                20,
                subject_x("""
                ingress:
                - name: deny-from-y
                  action: Deny
                  from:
                  - namespaces: {matchLabels: {ns: y}}
                """),
            ),
            anp(
                "allow-y-a-at-10",
                10,
                subject_x("""
                ingress:
                - name: allow-from-y-a
                  action: Allow
                  from:
                  - pods:
                      namespaceSelector: {matchLabels: {ns: y}}
                      podSelector: {matchLabels: {pod: a}}
                """),
            ),
        ],
        on_ports(Truth().drop(["y/b", "y/c"], "x/*"), "80/TCP"),
    ),
    # namedPort (Extended support): serve-80-tcp is TCP 80 on the destination pod.
    Case(
        "named-port",
        [
            anp(
                "deny-y-web",
                10,
                subject_x("""
                ingress:
                - name: deny-from-y-on-serve-80-tcp
                  action: Deny
                  from:
                  - namespaces: {matchLabels: {ns: y}}
                  ports:
                  - namedPort: serve-80-tcp
                """),
            )
        ],
        {
            "80/TCP": Truth().drop("y/*", "x/*"),
            "81/TCP": Truth(),
            "80/UDP": Truth(),
        },
    ),
    # portRange (Core): TCP 80..81 inclusive, other protocols untouched.
    Case(
        "port-range",
        [
            anp(
                "deny-y-range",
                10,
                subject_x("""
                ingress:
                - name: deny-from-y-tcp-80-81
                  action: Deny
                  from:
                  - namespaces: {matchLabels: {ns: y}}
                  ports:
                  - portRange: {protocol: TCP, start: 80, end: 81}
                """),
            )
        ],
        {
            "80/TCP": Truth().drop("y/*", "x/*"),
            "81/TCP": Truth().drop("y/*", "x/*"),
            "81/UDP": Truth(),
        },
    ),
    # portNumber (Core) on UDP.
    Case(
        "port-number-udp",
        [
            anp(
                "deny-y-udp-81",
                10,
                subject_x("""
                ingress:
                - name: deny-from-y-udp-81
                  action: Deny
                  from:
                  - namespaces: {matchLabels: {ns: y}}
                  ports:
                  - portNumber: {protocol: UDP, port: 81}
                """),
            )
        ],
        {
            "81/UDP": Truth().drop("y/*", "x/*"),
            "81/TCP": Truth(),
            "80/UDP": Truth(),
        },
    ),
    # subject.pods narrows the subject to x/a; an empty namespaces peer is "all".
    Case(
        "subject-pods-and-all-namespaces-peer",
        [
            anp(
                "isolate-x-a",
                10,
                """
                subject:
                  pods:
                    namespaceSelector: {matchLabels: {ns: x}}
                    podSelector: {matchLabels: {pod: a}}
                ingress:
                - name: deny-from-everywhere
                  action: Deny
                  from:
                  - namespaces: {}
                """,
            )
        ],
        on_ports(Truth().drop("*", "x/a"), "80/TCP"),
    ),
    # A pods peer with an empty namespaceSelector spans all namespaces.
    Case(
        "pods-peer-across-namespaces",
        [
            anp(
                "deny-c-pods",
                10,
                subject_x("""
                ingress:
                - name: deny-from-any-c
                  action: Deny
                  from:
                  - pods:
                      namespaceSelector: {}
                      podSelector: {matchLabels: {pod: c}}
                """),
            )
        ],
        on_ports(Truth().drop("*/c", "x/*"), "80/TCP"),
    ),
    # networks peer: cluster-internal IPs are matched too (z is 10.0.2.0/24).
    Case(
        "egress-networks-peer",
        [
            anp(
                "deny-to-z-cidr",
                10,
                subject_x("""
                egress:
                - name: deny-to-z-cidr
                  action: Deny
                  to:
                  - networks: [10.0.2.0/24]
                """),
            )
        ],
        on_ports(Truth().drop("x/*", "z/*"), "80/TCP"),
    ),
    # Egress allow-list: Allow to y, then Deny to every namespace (x included).
    Case(
        "egress-allowlist",
        [
            anp(
                "x-may-only-reach-y",
                10,
                subject_x("""
                egress:
                - name: allow-to-y
                  action: Allow
                  to:
                  - namespaces: {matchLabels: {ns: y}}
                - name: deny-everything-else
                  action: Deny
                  to:
                  - namespaces: {}
                """),
            )
        ],
        on_ports(Truth().drop("x/*", "*").allow("x/*", "y/*"), "80/TCP"),
    ),
    # BANP Deny yields to a NetworkPolicy that selects the pod (x/a), which in
    # turn isolates x/a from everyone it does not allow.
    Case(
        "banp-deny-yields-to-networkpolicy",
        [
            banp(
                subject_x("""
                ingress:
                - name: deny-from-y
                  action: Deny
                  from:
                  - namespaces: {matchLabels: {ns: y}}
                """)
            ),
            netpol(
                "allow-y-to-x-a",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Ingress]
                ingress:
                - from:
                  - namespaceSelector: {matchLabels: {ns: y}}
                """,
            ),
        ],
        on_ports(BASELINE_DENY_NP_ON_XA, "80/TCP"),
    ),
    # The same for egress: x/a is egress-isolated by its NetworkPolicy, x/b and
    # x/c fall through to the BANP.
    Case(
        "banp-egress-deny-yields-to-networkpolicy",
        [
            banp(
                subject_x("""
                egress:
                - name: deny-to-z
                  action: Deny
                  to:
                  - namespaces: {matchLabels: {ns: z}}
                """)
            ),
            netpol(
                "x-a-to-z",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Egress]
                egress:
                - to:
                  - namespaceSelector: {matchLabels: {ns: z}}
                """,
            ),
        ],
        on_ports(
            Truth().drop("x/a", "*").allow("x/a", "z/*").drop(["x/b", "x/c"], "z/*"), "80/TCP"
        ),
    ),
    # Isolation is per direction: an ingress-only NetworkPolicy leaves the
    # egress of x to the BANP ("rules ... applied to the selected pods if they
    # are not matched by any AdminNetworkPolicy or NetworkPolicy rules").
    Case(
        "banp-egress-applies-under-ingress-only-networkpolicy",
        [
            banp(
                subject_x(
                    """
                egress:
                - name: deny-to-z
                  action: Deny
                  to:
                  - namespaces: {matchLabels: {ns: z}}
                """
                )
            ),
            netpol(
                "allow-from-y",
                """
                podSelector: {}
                policyTypes: [Ingress]
                ingress:
                - from:
                  - namespaceSelector: {matchLabels: {ns: y}}
                """,
            ),
        ],
        on_ports(Truth().drop("*", "x/*").allow("y/*", "x/*").drop("x/*", "z/*"), "80/TCP"),
    ),
    # A BANP Allow cannot reopen what a NetworkPolicy isolates.
    Case(
        "banp-allow-cannot-undo-networkpolicy-isolation",
        [
            NP_DENY_INGRESS_X,
            banp(
                subject_x("""
                ingress:
                - name: allow-from-y
                  action: Allow
                  from:
                  - namespaces: {matchLabels: {ns: y}}
                """)
            ),
        ],
        on_ports(Truth().drop("*", "x/*"), "80/TCP"),
    ),
]


V1ALPHA2_CASES: list[Case] = [
    Case(
        "cnp-admin-deny",
        [
            cnp(
                "deny-y-to-x",
                "Admin",
                10,
                subject_x("""
                ingress:
                - name: deny-from-y
                  action: Deny
                  from:
                  - namespaces: {matchLabels: {ns: y}}
                """),
            )
        ],
        on_ports(Truth().drop("y/*", "x/*"), "80/TCP", "81/SCTP"),
    ),
    Case(
        "cnp-admin-accept-overrides-networkpolicy",
        [
            NP_DENY_INGRESS_X,
            cnp(
                "accept-y-to-x",
                "Admin",
                10,
                subject_x("""
                ingress:
                - name: accept-from-y
                  action: Accept
                  from:
                  - namespaces: {matchLabels: {ns: y}}
                """),
            ),
        ],
        on_ports(Truth().drop("*", "x/*").allow("y/*", "x/*"), "80/TCP"),
    ),
    # CNPAdminTierIntegration: Deny, then Pass to the NetworkPolicy, then Pass
    # with the NetworkPolicy deleted so the Baseline Deny decides.
    Case(
        "cnp-integration-admin-deny",
        [
            cnp("pass-example", "Admin", 10, gress_with_y("Deny")),
            NP_X_ONLY_WITH_Y,
            cnp("default", "Baseline", 10, gress_with_y("Deny")),
        ],
        on_ports(Truth().drop("*", "x/*").drop("x/*", "*"), "80/TCP"),
    ),
    Case(
        "cnp-integration-admin-pass-to-networkpolicy",
        [
            cnp("pass-example", "Admin", 10, gress_with_y("Pass")),
            NP_X_ONLY_WITH_Y,
            cnp("default", "Baseline", 10, gress_with_y("Deny")),
        ],
        on_ports(X_ONLY_WITH_Y, "80/TCP"),
    ),
    Case(
        "cnp-integration-admin-pass-to-baseline",
        [
            cnp("pass-example", "Admin", 10, gress_with_y("Pass")),
            cnp("default", "Baseline", 10, gress_with_y("Deny")),
        ],
        on_ports(Y_X_CUT_BOTH_WAYS, "80/TCP"),
    ),
    Case(
        "cnp-baseline-deny-yields-to-networkpolicy",
        [
            cnp(
                "baseline-deny-y",
                "Baseline",
                10,
                subject_x("""
                ingress:
                - name: deny-from-y
                  action: Deny
                  from:
                  - namespaces: {matchLabels: {ns: y}}
                """),
            ),
            netpol(
                "allow-y-to-x-a",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Ingress]
                ingress:
                - from:
                  - namespaceSelector: {matchLabels: {ns: y}}
                """,
            ),
        ],
        on_ports(BASELINE_DENY_NP_ON_XA, "80/TCP"),
    ),
    # Admin tier above Baseline whatever the priority numbers: the Baseline
    # policy has the smaller number but is evaluated after NetworkPolicy.
    Case(
        "cnp-admin-tier-before-baseline-tier",
        [
            cnp(
                "baseline-deny-all-into-x",
                "Baseline",
                0,
                subject_x("""
                ingress:
                - name: deny-all
                  action: Deny
                  from:
                  - namespaces: {}
                """),
            ),
            cnp(
                "admin-accept-z",
                "Admin",
                900,
                subject_x("""
                ingress:
                - name: accept-from-z
                  action: Accept
                  from:
                  - namespaces: {matchLabels: {ns: z}}
                """),
            ),
        ],
        on_ports(Truth().drop("*", "x/*").allow("z/*", "x/*"), "80/TCP"),
    ),
    Case(
        "cnp-priority-and-rule-order",
        [
            cnp(
                "deny-y",
                "Admin",
                10,
                subject_x("""
                ingress:
                - name: deny-from-y
                  action: Deny
                  from:
                  - namespaces: {matchLabels: {ns: y}}
                """),
            ),
            cnp(
                "accept-y-a",
                "Admin",
                5,
                subject_x("""
                ingress:
                - name: accept-from-y-a
                  action: Accept
                  from:
                  - pods:
                      namespaceSelector: {matchLabels: {ns: y}}
                      podSelector: {matchLabels: {pod: a}}
                - name: deny-from-y-b
                  action: Deny
                  from:
                  - pods:
                      namespaceSelector: {matchLabels: {ns: y}}
                      podSelector: {matchLabels: {pod: b}}
                """),
            ),
        ],
        on_ports(Truth().drop(["y/b", "y/c"], "x/*"), "80/TCP"),
    ),
    Case(
        "cnp-destination-named-port",
        [
            cnp(
                "deny-y-named",
                "Admin",
                10,
                subject_x("""
                ingress:
                - name: deny-from-y-on-serve-81-udp
                  action: Deny
                  from:
                  - namespaces: {matchLabels: {ns: y}}
                  protocols:
                  - destinationNamedPort: serve-81-udp
                """),
            )
        ],
        {"81/UDP": Truth().drop("y/*", "x/*"), "81/TCP": Truth(), "80/UDP": Truth()},
    ),
    Case(
        "cnp-tcp-port-range",
        [
            cnp(
                "deny-y-tcp-range",
                "Admin",
                10,
                subject_x("""
                ingress:
                - name: deny-from-y-tcp-80-81
                  action: Deny
                  from:
                  - namespaces: {matchLabels: {ns: y}}
                  protocols:
                  - tcp:
                      destinationPort:
                        range: {start: 80, end: 81}
                """),
            )
        ],
        {
            "80/TCP": Truth().drop("y/*", "x/*"),
            "81/TCP": Truth().drop("y/*", "x/*"),
            "81/UDP": Truth(),
        },
    ),
    Case(
        "cnp-udp-port-number-or-sctp-range",
        [
            cnp(
                "deny-y-udp-81-or-sctp",
                "Admin",
                10,
                subject_x("""
                ingress:
                - name: deny-from-y-udp-81-or-sctp-80-81
                  action: Deny
                  from:
                  - namespaces: {matchLabels: {ns: y}}
                  protocols:
                  - udp:
                      destinationPort: {number: 81}
                  - sctp:
                      destinationPort:
                        range: {start: 80, end: 81}
                """),
            )
        ],
        {
            "81/UDP": Truth().drop("y/*", "x/*"),
            "80/UDP": Truth(),
            "81/TCP": Truth(),
            "80/SCTP": Truth().drop("y/*", "x/*"),
        },
    ),
    # Egress Accept: "No further egress ClusterNetworkPolicy or NetworkPolicy
    # rules will be processed but any ingress rules at the destination do apply."
    Case(
        "cnp-egress-accept-keeps-destination-ingress",
        [
            cnp(
                "x-accept-to-y",
                "Admin",
                10,
                subject_x("""
                egress:
                - name: accept-to-y
                  action: Accept
                  to:
                  - namespaces: {matchLabels: {ns: y}}
                """),
            ),
            netpol(
                "deny-ingress",
                """
                podSelector: {}
                policyTypes: [Ingress]
                """,
                namespace="y",
            ),
        ],
        on_ports(Truth().drop("*", "y/*"), "80/TCP"),
    ),
    Case(
        "cnp-egress-networks",
        [
            cnp(
                "x-deny-to-z-cidr",
                "Admin",
                10,
                subject_x("""
                egress:
                - name: deny-to-z-cidr
                  action: Deny
                  to:
                  - networks: [10.0.2.0/24]
                """),
            )
        ],
        on_ports(Truth().drop("x/*", "z/*"), "80/TCP"),
    ),
    Case(
        "cnp-subject-pods",
        [
            cnp(
                "isolate-x-a",
                "Admin",
                10,
                """
                subject:
                  pods:
                    namespaceSelector: {matchLabels: {ns: x}}
                    podSelector: {matchLabels: {pod: a}}
                ingress:
                - name: deny-from-all
                  action: Deny
                  from:
                  - namespaces: {}
                """,
            )
        ],
        on_ports(Truth().drop("*", "x/a"), "80/TCP"),
    ),
    Case(
        "cnp-baseline-accept-cannot-undo-networkpolicy-isolation",
        [
            NP_DENY_INGRESS_X,
            cnp(
                "baseline-accept-y",
                "Baseline",
                10,
                subject_x("""
                ingress:
                - name: accept-from-y
                  action: Accept
                  from:
                  - namespaces: {matchLabels: {ns: y}}
                """),
            ),
        ],
        on_ports(Truth().drop("*", "x/*"), "80/TCP"),
    ),
]


@pytest.mark.parametrize("case", V1ALPHA1_CASES, ids=[c.id for c in V1ALPHA1_CASES])
def test_anp_v1alpha1_truth_table(case: Case) -> None:
    check_matrix(case.policies, case.expected)


@pytest.mark.parametrize("case", V1ALPHA2_CASES, ids=[c.id for c in V1ALPHA2_CASES])
def test_cnp_v1alpha2_truth_table(case: Case) -> None:
    check_matrix(case.policies, case.expected)


def test_explain_anp_priority_winner() -> None:
    policies = [
        anp("priority-50-example", 50, gress_with_y("Deny")),
        anp("old-priority-60-new-priority-40-example", 60, gress_with_y("Pass")),
        banp(gress_with_y("Allow")),
    ]
    result = explain(policies, "y/a", "x/a", "80/TCP")
    assert result["verdict"] == DROP
    check_decision(result, "egress", verdict=ALLOW)
    check_decision(
        result,
        "ingress",
        verdict=DROP,
        name="priority-50-example",
        kind_contains="AdminNetworkPolicy",
        rule_index=0,
        rule_action="Deny",
    )


def test_explain_anp_pass_then_networkpolicy_decides() -> None:
    policies = [
        anp("pass-example", 10, gress_with_y("Pass")),
        NP_X_ONLY_WITH_Y,
        banp(gress_with_y("Deny")),
    ]
    result = explain(policies, "y/b", "x/c", "80/TCP")
    assert result["verdict"] == ALLOW
    check_decision(result, "ingress", verdict=ALLOW, name="allow-gress-from-to-y", namespace="x")


def test_explain_anp_pass_then_banp_decides() -> None:
    policies = [anp("pass-example", 10, gress_with_y("Pass")), banp(gress_with_y("Deny"))]
    result = explain(policies, "x/a", "y/a", "80/TCP")
    assert result["verdict"] == DROP
    check_decision(
        result,
        "egress",
        verdict=DROP,
        name="default",
        kind_contains="BaselineAdminNetworkPolicy",
        rule_index=0,
        rule_action="Deny",
    )


def test_explain_cnp_rule_index_and_tier() -> None:
    policy = cnp(
        "accept-y-a",
        "Admin",
        5,
        subject_x("""
        ingress:
        - name: accept-from-y-a
          action: Accept
          from:
          - pods:
              namespaceSelector: {matchLabels: {ns: y}}
              podSelector: {matchLabels: {pod: a}}
        - name: deny-from-y-b
          action: Deny
          from:
          - pods:
              namespaceSelector: {matchLabels: {ns: y}}
              podSelector: {matchLabels: {pod: b}}
        """),
    )
    result = explain([policy], "y/b", "x/c", "80/TCP")
    assert result["verdict"] == DROP
    check_decision(
        result,
        "ingress",
        verdict=DROP,
        name="accept-y-a",
        kind_contains="ClusterNetworkPolicy",
        tier="Admin",
        rule_index=1,
        rule_action="Deny",
    )
    assert result["ingress"]["rule"]["name"] == "deny-from-y-b"


BAD_INPUTS = {
    # AdminNetworkPolicySpec.priority: Minimum=0, Maximum=1000.
    "anp-priority-above-1000": anp("priority-1001", 1001, gress_with_y("Deny")),
    # BaselineAdminNetworkPolicy is a singleton that must be named "default".
    "banp-not-named-default": banp(gress_with_y("Deny"), name="other"),
    # BANP rule actions are Allow or Deny only.
    "banp-pass-action": banp(gress_with_y("Pass")),
    # ClusterNetworkPolicy tier enum is Admin | Baseline.
    "cnp-unknown-tier": cnp("bad-tier", "Developer", 10, gress_with_y("Deny")),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_invalid_admin_policy_exits_1(name: str) -> None:
    rc, _out, _err = run_with_input(
        manifest([BAD_INPUTS[name]]), "matrix", ["--port", "80/TCP", "-o", "json"]
    )
    assert rc == 1
