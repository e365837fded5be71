"""Kubernetes NetworkPolicy e2e scenarios as truth tables.

Source: kubernetes/kubernetes test/e2e/network/netpol/network_policy.go (the
"Netpol" suites for TCP, UDP and SCTP).  Each case below restates one upstream
test in our own words on the full 3x3 cluster of ``_harness``; the upstream
tests probe a subset of the pods (and older versions all nine), so where they
are silent about a pod the expectation here follows from the same rule (for
example "x/a only admits x/b" says nothing about y/c, which is then dropped).
Pod-to-itself traffic is ignored, as upstream does (``ignoreLoopback``).

A few cases go beyond the e2e file but follow the NetworkPolicy API reference
(k8s.io/api/networking/v1 types.go): the policyTypes defaulting rule, empty
``from``/``ports`` lists, ``endPort`` ranges and ``ipBlock.except`` on ingress.
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


def netpol(name: str, spec: str, namespace: str = "x") -> str:
    """A networking.k8s.io/v1 NetworkPolicy with the given spec body."""
    body = textwrap.indent(textwrap.dedent(spec).strip(), "  ")
    return (
        "apiVersion: networking.k8s.io/v1\n"
        "kind: NetworkPolicy\n"
        f"metadata:\n  name: {name}\n  namespace: {namespace}\n"
        f"spec:\n{body}\n"
    )


DENY_INGRESS_X = netpol(
    "deny-ingress",
    """
    podSelector: {}
    policyTypes: [Ingress]
    """,
)


@dataclass
class Case:
    id: str
    policies: list[str]
    expected: dict[str, Truth]
    ns_labels: dict[str, dict[str, str]] | None = None
    pod_labels: dict[str, dict[str, str]] | None = None


CASES: list[Case] = [
    # "should support a 'default-deny-ingress' policy" (TCP, and the UDP/SCTP suites).
    Case(
        "default-deny-ingress",
        [DENY_INGRESS_X],
        on_ports(Truth().drop("*", "x/*"), "80/TCP", "81/UDP", "80/SCTP"),
    ),
    # "should support a 'default-deny-all' policy"
    Case(
        "default-deny-all",
        [
            netpol(
                "deny-all",
                """
                podSelector: {}
                policyTypes: [Ingress, Egress]
                """,
            )
        ],
        on_ports(Truth().drop("*", "x/*").drop("x/*", "*"), "80/TCP"),
    ),
    # "should enforce policy to allow traffic from pods within server namespace
    # based on PodSelector": a bare podSelector peer is the policy's namespace only.
    Case(
        "podselector-same-namespace-only",
        [
            netpol(
                "x-a-allows-x-b",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Ingress]
                ingress:
                - from:
                  - podSelector: {matchLabels: {pod: b}}
                """,
            )
        ],
        on_ports(Truth().drop("*", "x/a").allow("x/b", "x/a"), "80/TCP"),
    ),
    # "should enforce policy to allow ingress traffic for a target": deny-all
    # ingress in x, then a second policy opens x/a to every pod in every namespace.
    Case(
        "deny-all-then-allow-all-to-target",
        [
            DENY_INGRESS_X,
            netpol(
                "allow-all-to-a",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Ingress]
                ingress:
                - from:
                  - podSelector: {}
                    namespaceSelector: {}
                """,
            ),
        ],
        on_ports(Truth().drop("*", "x/*").allow("*", "x/a"), "80/TCP"),
    ),
    # "should enforce policy to allow ingress traffic from pods in all namespaces"
    Case(
        "empty-namespaceselector-is-all-namespaces",
        [
            netpol(
                "allow-from-another-ns",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Ingress]
                ingress:
                - from:
                  - namespaceSelector: {matchLabels: {}}
                """,
            )
        ],
        on_ports(Truth(), "80/TCP"),
    ),
    # "should enforce policy to allow traffic only from a different namespace,
    # based on NamespaceSelector" (also the "default ns label" variant).
    Case(
        "namespaceselector-by-metadata-name",
        [
            netpol(
                "allow-client-a-via-ns-selector",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Ingress]
                ingress:
                - from:
                  - namespaceSelector:
                      matchLabels: {kubernetes.io/metadata.name: y}
                """,
            )
        ],
        on_ports(Truth().drop(["x/*", "z/*"], "x/a"), "80/TCP"),
    ),
    # "should enforce policy based on PodSelector with MatchExpressions"
    Case(
        "podselector-matchexpressions",
        [
            netpol(
                "x-a-allows-x-b",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Ingress]
                ingress:
                - from:
                  - podSelector:
                      matchExpressions:
                      - {key: pod, operator: In, values: [b]}
                """,
            )
        ],
        on_ports(Truth().drop("*", "x/a").allow("x/b", "x/a"), "80/TCP"),
    ),
    # "should enforce policy based on NamespaceSelector with MatchExpressions"
    Case(
        "namespaceselector-matchexpressions",
        [
            netpol(
                "allow-ns-y-match-selector",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Ingress]
                ingress:
                - from:
                  - namespaceSelector:
                      matchExpressions:
                      - {key: ns, operator: In, values: [y]}
                """,
            )
        ],
        on_ports(Truth().drop(["x/*", "z/*"], "x/a"), "80/TCP"),
    ),
    # "should enforce policy based on PodSelector or NamespaceSelector": two peers
    # in one rule are ORed.
    Case(
        "podselector-or-namespaceselector",
        [
            netpol(
                "allow-ns-y-match-selector",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Ingress]
                ingress:
                - from:
                  - namespaceSelector:
                      matchExpressions:
                      - {key: kubernetes.io/metadata.name, operator: NotIn, values: [x]}
                  - podSelector: {matchLabels: {pod: b}}
                """,
            )
        ],
        on_ports(Truth().drop("x/c", "x/a"), "80/TCP"),
    ),
    # "should enforce policy based on PodSelector and NamespaceSelector": both
    # selectors in one peer are ANDed.
    Case(
        "podselector-and-namespaceselector",
        [
            netpol(
                "allow-ns-y-podselector-and-nsselector",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Ingress]
                ingress:
                - from:
                  - namespaceSelector:
                      matchExpressions:
                      - {key: kubernetes.io/metadata.name, operator: NotIn, values: [x]}
                    podSelector: {matchLabels: {pod: b}}
                """,
            )
        ],
        on_ports(Truth().drop("*", "x/a").allow(["y/b", "z/b"], "x/a"), "80/TCP"),
    ),
    # "should enforce policy based on Multiple PodSelectors and NamespaceSelectors"
    Case(
        "multi-value-podselector-and-namespaceselector",
        [
            netpol(
                "allow-ns-y-z-pod-b-c",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Ingress]
                ingress:
                - from:
                  - namespaceSelector:
                      matchExpressions:
                      - {key: kubernetes.io/metadata.name, operator: NotIn, values: [x]}
                    podSelector:
                      matchExpressions:
                      - {key: pod, operator: In, values: [b, c]}
                """,
            )
        ],
        on_ports(Truth().drop("*", "x/a").allow(["y/b", "y/c", "z/b", "z/c"], "x/a"), "80/TCP"),
    ),
    # "should enforce policy based on any PodSelectors"
    Case(
        "any-of-several-podselectors",
        [
            netpol(
                "allow-ns-x-pod-b-c",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Ingress]
                ingress:
                - from:
                  - podSelector: {matchLabels: {pod: b}}
                  - podSelector: {matchLabels: {pod: c}}
                """,
            )
        ],
        on_ports(Truth().drop("*", "x/a").allow(["x/b", "x/c"], "x/a"), "80/TCP"),
    ),
    # "should enforce policy to allow traffic only from a pod in a different
    # namespace based on PodSelector and NamespaceSelector" (TCP, UDP, SCTP suites)
    Case(
        "single-pod-in-other-namespace",
        [
            netpol(
                "allow-ns-y-pod-a-via-namespace-pod-selector",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Ingress]
                ingress:
                - from:
                  - namespaceSelector: {matchLabels: {ns: y}}
                    podSelector: {matchLabels: {pod: a}}
                """,
            )
        ],
        on_ports(Truth().drop("*", "x/a").allow("y/a", "x/a"), "80/TCP", "80/UDP", "80/SCTP"),
    ),
    # "should enforce policy based on Ports": only port 81 is opened, only from y.
    # A selected pod is isolated for every port and protocol, so 80/TCP and
    # 81/UDP are closed to everyone.
    Case(
        "numeric-port-from-namespace",
        [
            netpol(
                "allow-client-a-via-ns-selector",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Ingress]
                ingress:
                - from:
                  - namespaceSelector: {matchLabels: {ns: y}}
                  ports:
                  - {port: 81, protocol: TCP}
                """,
            )
        ],
        {
            "81/TCP": Truth().drop("*", "x/a").allow("y/*", "x/a"),
            "80/TCP": Truth().drop("*", "x/a"),
            "81/UDP": Truth().drop("*", "x/a"),
        },
    ),
    # "should enforce multiple, stacked policies with overlapping podSelectors":
    # allows from two policies on the same pod add up.
    Case(
        "stacked-policies-union",
        [
            netpol(
                "allow-client-a-via-ns-selector",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Ingress]
                ingress:
                - from:
                  - namespaceSelector: {matchLabels: {ns: y}}
                  ports:
                  - {port: 81, protocol: TCP}
                """,
            ),
            netpol(
                "allow-client-a-via-ns-selector-80",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Ingress]
                ingress:
                - from:
                  - namespaceSelector: {matchLabels: {ns: y}}
                  ports:
                  - {port: 80, protocol: TCP}
                """,
            ),
        ],
        on_ports(Truth().drop("*", "x/a").allow("y/*", "x/a"), "80/TCP", "81/TCP"),
    ),
    # "should support allow-all policy": one empty ingress rule admits everything.
    Case(
        "allow-all-empty-rule",
        [
            netpol(
                "allow-all",
                """
                podSelector: {}
                policyTypes: [Ingress]
                ingress:
                - {}
                """,
            )
        ],
        on_ports(Truth(), "80/TCP", "81/TCP", "81/UDP"),
    ),
    # API reference: an empty or missing `from` matches all sources and an empty
    # or missing `ports` all ports, so explicit empty lists allow everything too.
    Case(
        "empty-from-and-ports-lists-match-all",
        [
            netpol(
                "allow-all-empty-lists",
                """
                podSelector: {}
                policyTypes: [Ingress]
                ingress:
                - from: []
                  ports: []
                """,
            )
        ],
        on_ports(Truth(), "80/TCP", "81/SCTP"),
    ),
    # "should enforce updated policy" (second step): an explicit empty ingress
    # list admits nothing, unlike the empty rule `- {}` above.
    Case(
        "explicit-empty-ingress-list-denies",
        [
            netpol(
                "allow-all-mutate-to-deny-all",
                """
                podSelector: {}
                policyTypes: [Ingress]
                ingress: []
                """,
            )
        ],
        on_ports(Truth().drop("*", "x/*"), "81/TCP"),
    ),
    # API reference: with no policyTypes, Ingress is always implied; a spec with
    # only a podSelector is therefore a default deny for ingress.
    Case(
        "bare-podselector-implies-ingress-deny",
        [netpol("implicit-deny", "podSelector: {}")],
        on_ports(Truth().drop("*", "x/*"), "80/TCP"),
    ),
    # API reference: with no policyTypes, Egress is implied when egress rules
    # exist, and Ingress always, so x/a becomes isolated both ways.
    Case(
        "policytypes-inferred-from-egress-rules",
        [
            netpol(
                "egress-only-rules",
                """
                podSelector: {matchLabels: {pod: a}}
                egress:
                - to:
                  - podSelector: {matchLabels: {pod: b}}
                """,
            )
        ],
        on_ports(Truth().drop("*", "x/a").drop("x/a", "*").allow("x/a", "x/b"), "80/TCP"),
    ),
    # API reference: explicit policyTypes [Egress] means the ingress section is
    # not enforced; x/a stays open for ingress.
    Case(
        "explicit-egress-type-ignores-ingress-rules",
        [
            netpol(
                "egress-type-only",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Egress]
                ingress:
                - from:
                  - podSelector: {matchLabels: {pod: b}}
                egress:
                - to:
                  - namespaceSelector: {matchLabels: {ns: y}}
                """,
            )
        ],
        on_ports(Truth().drop("x/a", "*").allow("x/a", "y/*"), "80/TCP"),
    ),
    # "should allow ingress access on one named port": serve-81-tcp resolves to
    # TCP 81 only (the port's protocol defaults to TCP).
    Case(
        "named-port-ingress",
        [
            netpol(
                "allow-all",
                """
                podSelector: {}
                policyTypes: [Ingress]
                ingress:
                - ports:
                  - port: serve-81-tcp
                """,
            )
        ],
        {
            "81/TCP": Truth(),
            "80/TCP": Truth().drop("*", "x/*"),
            "81/UDP": Truth().drop("*", "x/*"),
        },
    ),
    # "should allow ingress access from namespace on one named port"
    Case(
        "named-port-ingress-from-namespace",
        [
            netpol(
                "allow-client-a-via-ns-selector-80",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Ingress]
                ingress:
                - from:
                  - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: y}}
                  ports:
                  - {port: serve-80-tcp, protocol: TCP}
                """,
            )
        ],
        {
            "80/TCP": Truth().drop(["x/*", "z/*"], "x/a"),
            "81/TCP": Truth().drop("*", "x/a"),
        },
    ),
    # "should allow egress access on one named port": the name resolves against
    # the destination pod's container ports.
    Case(
        "named-port-egress",
        [
            netpol(
                "allow-egress",
                """
                podSelector: {}
                policyTypes: [Egress]
                egress:
                - ports:
                  - port: serve-80-tcp
                """,
            )
        ],
        {"80/TCP": Truth(), "81/TCP": Truth().drop("x/*", "*")},
    ),
    # "should allow ingress access from updated namespace" (after the label is added)
    Case(
        "namespace-label-added",
        [
            netpol(
                "allow-client-a-via-ns-selector",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Ingress]
                ingress:
                - from:
                  - namespaceSelector: {matchLabels: {ns2: updated}}
                """,
            )
        ],
        on_ports(Truth().drop("*", "x/a").allow("y/*", "x/a"), "80/TCP"),
        ns_labels={"y": {"ns": "y", "ns2": "updated"}},
    ),
    # ... and before the label is added nothing reaches x/a.
    Case(
        "namespace-label-absent",
        [
            netpol(
                "allow-client-a-via-ns-selector",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Ingress]
                ingress:
                - from:
                  - namespaceSelector: {matchLabels: {ns2: updated}}
                """,
            )
        ],
        on_ports(Truth().drop("*", "x/a"), "80/TCP"),
    ),
    # "should allow ingress access from updated pod" (after the label is added):
    # matchLabels needs every listed label.
    Case(
        "pod-label-added",
        [
            netpol(
                "allow-client-a-via-pod-selector",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Ingress]
                ingress:
                - from:
                  - podSelector: {matchLabels: {pod: b, pod2: updated}}
                """,
            )
        ],
        on_ports(Truth().drop("*", "x/a").allow("x/b", "x/a"), "80/TCP"),
        pod_labels={"x/b": {"pod": "b", "pod2": "updated"}},
    ),
    # "should deny ingress from pods on other namespaces"
    Case(
        "empty-podselector-peer-is-own-namespace",
        [
            netpol(
                "deny-empty-policy",
                """
                podSelector: {}
                policyTypes: [Ingress]
                ingress:
                - from:
                  - podSelector: {matchLabels: {}}
                """,
            )
        ],
        on_ports(Truth().drop(["y/*", "z/*"], "x/*"), "80/TCP"),
    ),
    # "should deny ingress access to updated pod" (after x/a gets the label)
    Case(
        "pod-label-selects-into-isolation",
        [
            netpol(
                "deny-ingress-via-label-selector",
                """
                podSelector: {matchLabels: {target: isolated}}
                policyTypes: [Ingress]
                """,
            )
        ],
        on_ports(Truth().drop("*", "x/a"), "80/TCP"),
        pod_labels={"x/a": {"pod": "a", "target": "isolated"}},
    ),
    # "should deny egress from pods based on PodSelector"
    Case(
        "deny-egress-from-pod",
        [
            netpol(
                "deny-egress-pod-a",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Egress]
                """,
            )
        ],
        on_ports(Truth().drop("x/a", "*"), "80/TCP"),
    ),
    # "should deny egress from all pods in a namespace"
    Case(
        "deny-egress-from-namespace",
        [
            netpol(
                "deny-egress-ns-x",
                """
                podSelector: {}
                policyTypes: [Egress]
                """,
            )
        ],
        on_ports(Truth().drop("x/*", "*"), "80/TCP", "81/UDP"),
    ),
    # "should work with Ingress, Egress specified together"
    Case(
        "ingress-and-egress-together",
        [
            netpol(
                "allow-client-a-via-pod-selector",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Egress, Ingress]
                ingress:
                - from:
                  - podSelector: {matchLabels: {pod: b}}
                egress:
                - ports:
                  - port: 80
                """,
            )
        ],
        {
            "80/TCP": Truth().drop("*", "x/a").allow("x/b", "x/a"),
            "81/TCP": Truth().drop("*", "x/a").drop("x/a", "*").allow("x/b", "x/a"),
        },
    ),
    # "should support denying of egress traffic on the client side (even if the
    # server explicitly allows this traffic)"
    Case(
        "client-egress-deny-beats-server-allow",
        [
            netpol(
                "allow-to-ns-y-pod-a",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Egress]
                egress:
                - to:
                  - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: y}}
                    podSelector: {matchLabels: {pod: a}}
                """,
            ),
            netpol(
                "allow-from-xa-on-ya-match-selector",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Ingress]
                ingress:
                - from:
                  - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: x}}
                    podSelector: {matchLabels: {pod: a}}
                """,
                namespace="y",
            ),
            netpol(
                "allow-from-xa-on-yb-match-selector",
                """
                podSelector: {matchLabels: {pod: b}}
                policyTypes: [Ingress]
                ingress:
                - from:
                  - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: x}}
                    podSelector: {matchLabels: {pod: a}}
                """,
                namespace="y",
            ),
        ],
        on_ports(
            Truth().drop("x/a", "*").drop("*", ["y/a", "y/b"]).allow("x/a", "y/a"),
            "80/TCP",
        ),
    ),
    # "should enforce egress policy allowing traffic to a server in a different
    # namespace based on PodSelector and NamespaceSelector"
    Case(
        "egress-to-single-pod-in-other-namespace",
        [
            netpol(
                "allow-to-ns-y-pod-a",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Egress]
                egress:
                - to:
                  - namespaceSelector: {matchLabels: {ns: y}}
                    podSelector: {matchLabels: {pod: a}}
                """,
            )
        ],
        on_ports(Truth().drop("x/a", "*").allow("x/a", "y/a"), "80/TCP"),
    ),
    # "should enforce ingress policy allowing any port traffic to a server on a
    # specific protocol"
    Case(
        "protocol-only-port-entry",
        [
            netpol(
                "allow-ingress-by-proto",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Ingress]
                ingress:
                - ports:
                  - protocol: TCP
                """,
            )
        ],
        {
            "80/TCP": Truth(),
            "81/TCP": Truth(),
            "80/UDP": Truth().drop("*", "x/a"),
            "80/SCTP": Truth().drop("*", "x/a"),
        },
    ),
    # "should enforce multiple ingress policies with ingress allow-all policy
    # taking precedence" -- first with the port-80 policy alone ...
    Case(
        "ingress-port-80-only",
        [
            netpol(
                "allow-ingress-port-80",
                """
                podSelector: {}
                policyTypes: [Ingress]
                ingress:
                - ports:
                  - port: 80
                """,
            )
        ],
        {"80/TCP": Truth(), "81/TCP": Truth().drop("*", "x/*")},
    ),
    # ... then with the allow-all policy added.
    Case(
        "ingress-allow-all-takes-precedence",
        [
            netpol(
                "allow-ingress-port-80",
                """
                podSelector: {}
                policyTypes: [Ingress]
                ingress:
                - ports:
                  - port: 80
                """,
            ),
            netpol(
                "allow-ingress",
                """
                podSelector: {}
                policyTypes: [Ingress]
                ingress:
                - {}
                """,
            ),
        ],
        on_ports(Truth(), "80/TCP", "81/TCP"),
    ),
    # "should enforce multiple egress policies with egress allow-all policy
    # taking precedence" (both steps in one table pair).
    Case(
        "egress-port-80-only",
        [
            netpol(
                "allow-egress-port-80",
                """
                podSelector: {}
                policyTypes: [Egress]
                egress:
                - ports:
                  - port: 80
                """,
            )
        ],
        {"80/TCP": Truth(), "81/TCP": Truth().drop("x/*", "*")},
    ),
    Case(
        "egress-allow-all-takes-precedence",
        [
            netpol(
                "allow-egress-port-80",
                """
                podSelector: {}
                policyTypes: [Egress]
                egress:
                - ports:
                  - port: 80
                """,
            ),
            netpol(
                "allow-egress",
                """
                podSelector: {}
                policyTypes: [Egress]
                egress:
                - {}
                """,
            ),
        ],
        on_ports(Truth(), "80/TCP", "81/TCP"),
    ),
    # "should allow egress access to server in CIDR block" (y/b is 10.0.1.2)
    Case(
        "egress-ipblock-host",
        [
            netpol(
                "allow-client-a-via-cidr-egress-rule",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Egress]
                egress:
                - to:
                  - ipBlock: {cidr: 10.0.1.2/32}
                """,
            )
        ],
        on_ports(Truth().drop("x/a", "*").allow("x/a", "y/b"), "80/TCP"),
    ),
    # "should enforce except clause while egress access to server in CIDR block":
    # the /4 around x/b's IP (0.0.0.0/4 holds every pod) minus x/b itself.
    Case(
        "egress-ipblock-except",
        [
            netpol(
                "allow-client-a-via-cidr-egress-rule",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Egress]
                egress:
                - to:
                  - ipBlock:
                      cidr: 0.0.0.0/4
                      except: [10.0.0.2/32]
                """,
            )
        ],
        on_ports(Truth().drop("x/a", "x/b"), "80/TCP"),
    ),
    # Not an upstream step (upstream replaces the policy: the next case): a second,
    # separate policy allows x/b's /32 and the union admits it again.
    Case(
        "ipblock-except-reopened-by-other-policy",
        [
            netpol(
                "allow-client-a-via-cidr-egress-rule",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Egress]
                egress:
                - to:
                  - ipBlock:
                      cidr: 0.0.0.0/4
                      except: [10.0.0.2/32]
                """,
            ),
            netpol(
                "allow-client-a-to-x-b",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Egress]
                egress:
                - to:
                  - ipBlock: {cidr: 10.0.0.2/32}
                """,
            ),
        ],
        on_ports(Truth(), "80/TCP"),
    ),
    # "should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is
    # allowed", second step: UpdatePolicy replaces the policy of that name with one
    # that allows x/b's /32 only, so x/a reaches x/b and nothing else.
    Case(
        "ipblock-except-policy-updated",
        [
            netpol(
                "allow-client-a-via-cidr-egress-rule",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Egress]
                egress:
                - to:
                  - ipBlock: {cidr: 10.0.0.2/32}
                """,
            ),
        ],
        on_ports(Truth().drop("x/a", "*").allow("x/a", "x/b"), "80/TCP"),
    ),
    # API reference: ipBlock with except on ingress (y is 10.0.1.0/24, y/c .3).
    Case(
        "ingress-ipblock-except",
        [
            netpol(
                "allow-from-y-but-c",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Ingress]
                ingress:
                - from:
                  - ipBlock:
                      cidr: 10.0.1.0/24
                      except: [10.0.1.3/32]
                """,
            )
        ],
        on_ports(Truth().drop("*", "x/a").allow(["y/a", "y/b"], "x/a"), "80/TCP"),
    ),
    # "should enforce policies to check ingress and egress policies can be
    # controlled independently based on PodSelector"
    Case(
        "ingress-and-egress-independent",
        [
            netpol(
                "allow-egress-for-target",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Egress]
                egress:
                - {}
                """,
            ),
            netpol(
                "deny-ingress-via-label-selector",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Ingress]
                """,
            ),
        ],
        on_ports(Truth().drop("*", "x/a"), "80/TCP"),
    ),
    # "should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP'"
    Case(
        "sctp-allow-does-not-open-tcp",
        [
            DENY_INGRESS_X,
            netpol(
                "allow-only-sctp-ingress-on-port-81",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Ingress]
                ingress:
                - ports:
                  - {port: 81, protocol: SCTP}
                """,
            ),
        ],
        {
            "81/TCP": Truth().drop("*", "x/*"),
            "81/SCTP": Truth().drop("*", "x/*").allow("*", "x/a"),
        },
    ),
    # "should properly isolate pods that are selected by a policy allowing SCTP"
    Case(
        "sctp-allow-still-isolates",
        [
            netpol(
                "allow-only-sctp-ingress-on-port-80",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Ingress]
                ingress:
                - ports:
                  - {port: 80, protocol: SCTP}
                """,
            )
        ],
        {
            "81/TCP": Truth().drop("*", "x/a"),
            "80/SCTP": Truth(),
            "81/SCTP": Truth().drop("*", "x/a"),
        },
    ),
    # "should not allow access by TCP when a policy specifies only UDP"
    Case(
        "udp-allow-does-not-open-tcp",
        [
            netpol(
                "allow-only-udp-ingress-on-port-81",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Ingress]
                ingress:
                - ports:
                  - {port: 81, protocol: UDP}
                """,
            )
        ],
        {"81/TCP": Truth().drop("*", "x/a"), "81/UDP": Truth()},
    ),
    # "should enforce policy based on NamespaceSelector with MatchExpressions
    # using default ns label" (an egress rule)
    Case(
        "egress-namespace-notin",
        [
            netpol(
                "allow-ns-y-match-selector-for-immutable-ns-label",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Egress]
                egress:
                - to:
                  - namespaceSelector:
                      matchExpressions:
                      - {key: kubernetes.io/metadata.name, operator: NotIn, values: [y]}
                """,
            )
        ],
        on_ports(Truth().drop("x/a", "y/*"), "80/TCP"),
    ),
    # API reference (endPort): 81..82 covers 81 but not 80; the range is TCP by default.
    Case(
        "ingress-endport-range",
        [
            netpol(
                "allow-range-from-y",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Ingress]
                ingress:
                - from:
                  - namespaceSelector: {matchLabels: {ns: y}}
                  ports:
                  - {port: 81, endPort: 82}
                """,
            )
        ],
        {
            "80/TCP": Truth().drop("*", "x/a"),
            "81/TCP": Truth().drop("*", "x/a").allow("y/*", "x/a"),
            "81/UDP": Truth().drop("*", "x/a"),
        },
    ),
    # API reference (endPort): a UDP range 80..81 on egress.
    Case(
        "egress-endport-range-udp",
        [
            netpol(
                "allow-udp-range",
                """
                podSelector: {}
                policyTypes: [Egress]
                egress:
                - ports:
                  - {protocol: UDP, port: 80, endPort: 81}
                """,
            )
        ],
        {
            "80/UDP": Truth(),
            "81/UDP": Truth(),
            "80/TCP": Truth().drop("x/*", "*"),
        },
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_k8s_e2e_truth_table(case: Case) -> None:
    check_matrix(case.policies, case.expected, case.ns_labels, case.pod_labels)


POD_B_ONLY = netpol(
    "x-a-allows-x-b",
    """
    podSelector: {matchLabels: {pod: a}}
    policyTypes: [Ingress]
    ingress:
    - from:
      - podSelector: {matchLabels: {pod: b}}
    """,
)


def test_explain_names_the_allowing_networkpolicy() -> None:
    result = explain([POD_B_ONLY], "x/b", "x/a", "80/TCP")
    assert result["verdict"] == ALLOW
    check_decision(result, "egress", verdict=ALLOW)
    check_decision(
        result,
        "ingress",
        verdict=ALLOW,
        name="x-a-allows-x-b",
        namespace="x",
        kind_contains="NetworkPolicy",
        rule_index=0,
    )


def test_explain_isolated_pod_drops_unmatched_ingress() -> None:
    result = explain([POD_B_ONLY], "y/b", "x/a", "80/TCP")
    assert result["verdict"] == DROP
    check_decision(result, "egress", verdict=ALLOW)
    check_decision(result, "ingress", verdict=DROP)


BAD_INPUTS = {
    "yaml-syntax-error": "apiVersion: v1\nkind: Namespace\nmetadata: {name: [unclosed\n",
    # NetworkPolicyPort validation: endPort needs a numeric port ...
    "endport-with-named-port": netpol(
        "bad-endport",
        """
        podSelector: {}
        ingress:
        - ports:
          - {port: serve-80-tcp, endPort: 81}
        """,
    ),
    # ... and must not be below it.
    "endport-below-port": netpol(
        "bad-range",
        """
        podSelector: {}
        ingress:
        - ports:
          - {port: 81, endPort: 80}
        """,
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_exits_1(name: str) -> None:
    text = BAD_INPUTS[name]
    full = text if name == "yaml-syntax-error" else manifest([text])
    rc, _out, _err = run_with_input(full, "matrix", ["--port", "80/TCP", "-o", "json"])
    assert rc == 1
