"""The resources the lab API server serves: group, version, kind, scope, validation."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fyke.api import adminpolicy, antrea
from fyke.api.core import parse_namespace, parse_node, parse_pod, parse_service
from fyke.api.netpol import parse_network_policy

Validator = Callable[[Mapping[str, Any]], object]


@dataclass(frozen=True, slots=True, kw_only=True)
class Resource:
    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    status: bool = False  # has a status subresource
    validate: Validator | None = None
    categories: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def group_version(self) -> tuple[str, str]:
        return (self.group, self.version)


def _antrea(kind: str) -> Validator:
    if kind in (antrea.ACNP, antrea.ANNP):
        return lambda d: antrea.parse_policy(d, kind)
    if kind == antrea.TIER:
        return antrea.parse_tier
    return lambda d: antrea.parse_group(d, kind)


def _admin(kind: str, version: str) -> Validator:
    return lambda d: adminpolicy.parse_admin_policy(d, kind, version)


def _none(_: Mapping[str, Any]) -> None:
    return None


RESOURCES: tuple[Resource, ...] = (
    Resource(
        group="",
        version="v1",
        kind="Namespace",
        plural="namespaces",
        namespaced=False,
        short_names=("ns",),
        status=True,
        validate=parse_namespace,
    ),
    Resource(
        group="",
        version="v1",
        kind="Pod",
        plural="pods",
        namespaced=True,
        short_names=("po",),
        status=True,
        validate=parse_pod,
        categories=("all",),
    ),
    Resource(
        group="",
        version="v1",
        kind="Node",
        plural="nodes",
        namespaced=False,
        short_names=("no",),
        status=True,
        validate=parse_node,
    ),
    Resource(
        group="",
        version="v1",
        kind="Service",
        plural="services",
        namespaced=True,
        short_names=("svc",),
        status=True,
        categories=("all",),
        validate=parse_service,
    ),
    Resource(
        group="",
        version="v1",
        kind="Endpoints",
        plural="endpoints",
        namespaced=True,
        short_names=("ep",),
    ),
    Resource(
        group="discovery.k8s.io",
        version="v1",
        kind="EndpointSlice",
        plural="endpointslices",
        namespaced=True,
    ),
    Resource(
        group="networking.k8s.io",
        version="v1",
        kind="NetworkPolicy",
        plural="networkpolicies",
        namespaced=True,
        short_names=("netpol",),
        validate=parse_network_policy,
    ),
    Resource(
        group=adminpolicy.GROUP,
        version="v1alpha1",
        kind=adminpolicy.ANP,
        plural="adminnetworkpolicies",
        namespaced=False,
        short_names=("anp",),
        status=True,
        validate=_admin(adminpolicy.ANP, "v1alpha1"),
    ),
    Resource(
        group=adminpolicy.GROUP,
        version="v1alpha1",
        kind=adminpolicy.BANP,
        plural="baselineadminnetworkpolicies",
        namespaced=False,
        short_names=("banp",),
        status=True,
        validate=_admin(adminpolicy.BANP, "v1alpha1"),
    ),
    Resource(
        group=adminpolicy.GROUP,
        version="v1alpha2",
        kind=adminpolicy.CNP,
        plural="clusternetworkpolicies",
        namespaced=False,
        short_names=("cnp",),
        status=True,
        validate=_admin(adminpolicy.CNP, "v1alpha2"),
    ),
    Resource(
        group=antrea.GROUP,
        version="v1beta1",
        kind=antrea.ACNP,
        plural="clusternetworkpolicies",
        namespaced=False,
        short_names=("acnp",),
        status=True,
        validate=_antrea(antrea.ACNP),
    ),
    Resource(
        group=antrea.GROUP,
        version="v1beta1",
        kind=antrea.ANNP,
        plural="networkpolicies",
        namespaced=True,
        short_names=("annp",),
        status=True,
        validate=_antrea(antrea.ANNP),
    ),
    Resource(
        group=antrea.GROUP,
        version="v1beta1",
        kind=antrea.TIER,
        plural="tiers",
        namespaced=False,
        short_names=("tr",),
        validate=_antrea(antrea.TIER),
    ),
    Resource(
        group=antrea.GROUP,
        version="v1beta1",
        kind=antrea.CLUSTER_GROUP,
        plural="clustergroups",
        namespaced=False,
        short_names=("cg",),
        status=True,
        validate=_antrea(antrea.CLUSTER_GROUP),
    ),
    Resource(
        group=antrea.GROUP,
        version="v1beta1",
        kind=antrea.NS_GROUP,
        plural="groups",
        namespaced=True,
        short_names=("grp",),
        status=True,
        validate=_antrea(antrea.NS_GROUP),
    ),
    Resource(
        group=antrea.GROUP,
        version="v1beta1",
        kind="Traceflow",
        plural="traceflows",
        namespaced=False,
        short_names=("tf",),
        status=True,
    ),
)


class Registry:
    def __init__(self, resources: tuple[Resource, ...] = RESOURCES) -> None:
        self.resources = resources
        self._by_path = {(r.group, r.version, r.plural): r for r in resources}
        self._by_kind = {(r.group, r.kind): r for r in resources}

    def lookup(self, group: str, version: str, plural: str) -> Resource | None:
        return self._by_path.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> Resource | None:
        group, _, _ = api_version.rpartition("/")
        return self._by_kind.get((group, kind))

    def group_versions(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for r in self.resources:
            if r.group and r.version not in out.setdefault(r.group, []):
                out[r.group].append(r.version)
        return out

    def in_group_version(self, group: str, version: str) -> list[Resource]:
        return [r for r in self.resources if r.group == group and r.version == version]
