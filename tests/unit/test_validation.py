"""Bad input: exit code 1 and an error naming the kind, namespace/name and field path."""

from __future__ import annotations

import pytest

from fyke.api.errors import ValidationError
from tests.unit.conftest import Run

POD = """
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {pod: a}}
status: {podIP: 10.0.0.1}
---
"""


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (
            """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: bad, namespace: x}
spec:
  podSelector: {}
  ingress:
  - ports: [{port: 100, endPort: 90}]
""",
            "NetworkPolicy x/bad: spec.ingress[0].ports[0].endPort: must be >= port (100)",
        ),
        (
            """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: bad, namespace: x}
spec:
  podSelector: {}
  egress:
  - ports: [{port: http, endPort: 90}]
""",
            "NetworkPolicy x/bad: spec.egress[0].ports[0].endPort: may not be specified when "
            "port is a named port",
        ),
        (
            """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: bad, namespace: x}
spec:
  podSelector: {}
  ingress:
  - from: [{}]
""",
            "NetworkPolicy x/bad: spec.ingress[0].from[0]: must specify a peer",
        ),
        (
            """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: bad, namespace: x}
spec:
  podSelector: {}
  ingress:
  - from: [{ipBlock: {cidr: 10.0.0.0/24, except: [10.1.0.0/24]}}]
""",
            "NetworkPolicy x/bad: spec.ingress[0].from[0].ipBlock.except[0]: must be a strict "
            "subset of 10.0.0.0/24",
        ),
        (
            """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: bad, namespace: x}
spec:
  podSelector:
    matchExpressions: [{key: a, operator: In}]
""",
            "NetworkPolicy x/bad: spec.podSelector.matchExpressions[0].values: must be specified",
        ),
        (
            """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: bad, namespace: x}
spec:
  podSelector: {}
  ingress:
  - ports: [{protocol: ICMP, port: 1}]
""",
            "NetworkPolicy x/bad: spec.ingress[0].ports[0].protocol: unsupported value 'ICMP'",
        ),
        (
            """
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: anp}
spec:
  priority: 1001
  subject: {namespaces: {}}
""",
            "AdminNetworkPolicy anp: spec.priority: must be <= 1000, got 1001",
        ),
        (
            """
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: other}
spec:
  subject: {namespaces: {}}
""",
            "BaselineAdminNetworkPolicy other: metadata.name: only one",
        ),
        (
            """
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: anp}
spec:
  priority: 3
  subject: {namespaces: {}}
  ingress:
  - {name: r, action: Accept, from: [{namespaces: {}}]}
""",
            "AdminNetworkPolicy anp: spec.ingress[0].action: unsupported value 'Accept'",
        ),
        (
            """
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: cnp}
spec:
  tier: Admin
  priority: 3
  subject: {namespaces: {}}
  ingress:
  - action: Accept
    from: [{namespaces: {}}]
    protocols: [{tcp: {destinationPort: {range: {start: 90, end: 90}}}}]
""",
            "ClusterNetworkPolicy cnp: spec.ingress[0].protocols[0].tcp.destinationPort.range.end: "
            "must be > start (90)",
        ),
        (
            """
apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: acnp}
spec:
  priority: 1
  tier: nosuchtier
  appliedTo: [{podSelector: {}}]
""",
            "ClusterNetworkPolicy acnp: spec.tier: tier 'nosuchtier' does not exist",
        ),
        (
            """
apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: acnp}
spec:
  priority: 1
  ingress:
  - action: Allow
""",
            "ClusterNetworkPolicy acnp: spec.ingress[0].appliedTo: appliedTo must be set in spec "
            "or in every rule",
        ),
        (
            """
apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: acnp}
spec:
  priority: 1
  tier: baseline
  appliedTo: [{podSelector: {}}]
  egress:
  - action: Pass
""",
            "ClusterNetworkPolicy acnp: spec.egress[0].action: Pass is not allowed in the "
            "baseline tier",
        ),
        (
            """
apiVersion: crd.antrea.io/v1beta1
kind: NetworkPolicy
metadata: {name: annp, namespace: x}
spec:
  priority: 1
  appliedTo: [{podSelector: {}}]
  ingress:
  - action: Drop
    ports: [{port: 80, endPort: 70}]
""",
            "NetworkPolicy x/annp: spec.ingress[0].ports[0].endPort: must be >= port (80)",
        ),
        (
            """
apiVersion: crd.antrea.io/v1beta1
kind: Tier
metadata: {name: mine}
spec: {priority: 100}
""",
            "Tier mine: spec.priority: 100 overlaps with existing Tier securityops",
        ),
        (
            """
apiVersion: crd.antrea.io/v1beta1
kind: NetworkPolicy
metadata: {name: annp, namespace: x}
spec:
  priority: 1
  appliedTo: [{podSelector: {}}]
  ingress:
  - action: Drop
    enableLogging: "yes"
""",
            "NetworkPolicy x/annp: spec.ingress[0].enableLogging: must be true or false",
        ),
        (
            """
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: x}
spec:
  containers: [{name: c, ports: [{containerPort: 70000}]}]
""",
            "Pod x/b: spec.containers[0].ports[0].containerPort: must be <= 65535",
        ),
        (
            """
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: bad}
spec:
  tier: Admin
  priority: 5
  subject: {namespaces: {}}
  egress:
  - action: Accept
    to: [{pods: {podSelector: {}}}, {networks: ["10.0.0.0/8"]}]
    protocols: [{destinationNamedPort: web}]
""",
            "ClusterNetworkPolicy bad: spec.egress[0]: a networks peer cannot be set with "
            "destinationNamedPort protocols",
        ),
    ],
)
def test_bad_input_names_object_and_field(fykectl: Run, manifest: str, message: str) -> None:
    code, _, err = fykectl(POD + manifest, "policy", "matrix", "-o", "json")
    assert code == 1
    assert message in err


def test_unknown_kinds_are_skipped_with_a_warning(fykectl: Run) -> None:
    extra = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: x}
"""
    code, out, err = fykectl(POD + extra, "policy", "matrix", "-o", "json")
    assert code == 0
    assert "skipping unsupported kind apps/v1/Deployment web" in err
    assert out["pods"] == ["x/a"]


def test_yaml_that_does_not_parse_is_an_error(fykectl: Run) -> None:
    code, _, err = fykectl("kind: [", "policy", "matrix", "-o", "json")
    assert code == 1
    assert "cannot parse" in err


def test_bad_port_argument(fykectl: Run) -> None:
    code, _, err = fykectl(POD, "policy", "matrix", "--port", "80/ICMP", "-o", "json")
    assert code == 1
    assert "protocol must be one of TCP, UDP, SCTP" in err


def test_a_lenient_compile_leaves_out_a_policy_whole() -> None:
    """Strict (offline tools): a policy whose group nesting is too deep is an error.
    Lenient (controller): that policy is left out with none of its rules, the rest kept."""
    from fyke.api.load import load_texts
    from fyke.policy.compile import compile_policies

    text = """
apiVersion: crd.antrea.io/v1beta1
kind: ClusterGroup
metadata: {name: g1}
spec: {childGroups: [g2]}
---
apiVersion: crd.antrea.io/v1beta1
kind: ClusterGroup
metadata: {name: g2}
spec: {childGroups: [g3]}
---
apiVersion: crd.antrea.io/v1beta1
kind: ClusterGroup
metadata: {name: g3}
spec: {podSelector: {}}
---
apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: deep}
spec:
  priority: 1
  appliedTo: [{podSelector: {}}]
  ingress:
  - {action: Allow, from: [{podSelector: {}}]}
  - {action: Drop, from: [{group: g1}]}
---
apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: fine}
spec:
  priority: 2
  appliedTo: [{podSelector: {}}]
  ingress: [{action: Drop}]
"""
    inv = load_texts([("t", text)])
    with pytest.raises(ValidationError, match="nesting"):
        compile_policies(inv)
    lenient = compile_policies(inv, strict=False)
    assert {r.policy.name for r in lenient.rules} == {"fine"}
    assert [(i[1], i[3]) for i in lenient.invalid] == [("ClusterNetworkPolicy", "deep")]
