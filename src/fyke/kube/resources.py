"""The kinds fyke watches, as lightkube generic resources (JSON in, JSON out), so one
client layer serves kube-apiserver and the lab API server alike."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from lightkube.core.resource import Resource
from lightkube.generic_resource import create_global_resource, create_namespaced_resource


@dataclass(frozen=True, slots=True)
class Kind:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    def resource(self) -> type[Resource]:
        return _resource(self)


@functools.cache
def _resource(kind: Kind) -> type[Resource]:
    # lightkube registers each generic kind once per process: make it once.
    make = create_namespaced_resource if kind.namespaced else create_global_resource
    return make(kind.group, kind.version, kind.kind, kind.plural)


NAMESPACE = Kind("", "v1", "Namespace", "namespaces", False)
POD = Kind("", "v1", "Pod", "pods", True)
NODE = Kind("", "v1", "Node", "nodes", False)
SERVICE = Kind("", "v1", "Service", "services", True)
ENDPOINT_SLICE = Kind("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", True)
NETWORK_POLICY = Kind("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", True)
ADMIN_NETWORK_POLICY = Kind(
    "policy.networking.k8s.io", "v1alpha1", "AdminNetworkPolicy", "adminnetworkpolicies", False
)
BASELINE_ADMIN_NETWORK_POLICY = Kind(
    "policy.networking.k8s.io",
    "v1alpha1",
    "BaselineAdminNetworkPolicy",
    "baselineadminnetworkpolicies",
    False,
)
CLUSTER_NETWORK_POLICY = Kind(
    "policy.networking.k8s.io", "v1alpha2", "ClusterNetworkPolicy", "clusternetworkpolicies", False
)
ANTREA_CLUSTER_NETWORK_POLICY = Kind(
    "crd.antrea.io", "v1beta1", "ClusterNetworkPolicy", "clusternetworkpolicies", False
)
ANTREA_NETWORK_POLICY = Kind("crd.antrea.io", "v1beta1", "NetworkPolicy", "networkpolicies", True)
TIER = Kind("crd.antrea.io", "v1beta1", "Tier", "tiers", False)
CLUSTER_GROUP = Kind("crd.antrea.io", "v1beta1", "ClusterGroup", "clustergroups", False)
GROUP = Kind("crd.antrea.io", "v1beta1", "Group", "groups", True)

ALL: tuple[Kind, ...] = (
    NAMESPACE,
    POD,
    NODE,
    SERVICE,
    ENDPOINT_SLICE,
    NETWORK_POLICY,
    ADMIN_NETWORK_POLICY,
    BASELINE_ADMIN_NETWORK_POLICY,
    CLUSTER_NETWORK_POLICY,
    ANTREA_CLUSTER_NETWORK_POLICY,
    ANTREA_NETWORK_POLICY,
    TIER,
    CLUSTER_GROUP,
    GROUP,
    Kind("", "v1", "Endpoints", "endpoints", True),
    Kind("crd.antrea.io", "v1beta1", "Traceflow", "traceflows", False),
)


def kind_of(api_version: str, kind: str) -> Kind | None:
    group, _, version = api_version.rpartition("/")
    for k in ALL:
        if k.group == group and k.version == version and k.kind == kind:
            return k
    return None
