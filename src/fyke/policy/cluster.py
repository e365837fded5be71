"""The cluster an evaluation runs over: namespaces, pods and nodes, indexed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fyke.api.core import NAMESPACE_NAME_LABEL, Namespace, Node, Pod
from fyke.api.errors import ObjectRef, ValidationError
from fyke.api.fields import IPAddress


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """One side of a connection: a pod (index into Cluster.pods) or an address outside."""

    pod: int | None = None
    ip: IPAddress | None = None


class Cluster:
    def __init__(
        self, namespaces: Iterable[Namespace], pods: Iterable[Pod], nodes: Iterable[Node] = ()
    ) -> None:
        self.namespaces: dict[str, Namespace] = {}
        for ns in namespaces:
            if ns.name in self.namespaces:
                raise ValidationError(
                    ObjectRef(kind="Namespace", name=ns.name), "", "defined twice"
                )
            self.namespaces[ns.name] = ns
        self.pods: list[Pod] = []
        self.index: dict[str, int] = {}
        for pod in pods:
            if pod.key in self.index:
                raise ValidationError(
                    ObjectRef(kind="Pod", name=pod.name, namespace=pod.namespace),
                    "",
                    "defined twice",
                )
            self.index[pod.key] = len(self.pods)
            self.pods.append(pod)
            if pod.namespace not in self.namespaces:
                # A namespace the input does not declare exists with only its name label.
                self.namespaces[pod.namespace] = Namespace(
                    name=pod.namespace, labels={NAMESPACE_NAME_LABEL: pod.namespace}
                )
        self.nodes = list(nodes)
        self.pod_by_ip: dict[IPAddress, int] = {}
        for i, pod in enumerate(self.pods):
            if pod.host_network:
                continue
            for ip in pod.ips:
                other = self.pod_by_ip.setdefault(ip, i)
                if other != i:
                    raise ValidationError(
                        ObjectRef(kind="Pod", name=pod.name, namespace=pod.namespace),
                        "status.podIP",
                        f"{ip} is also the IP of {self.pods[other].key}",
                    )

    def endpoint(self, text: str) -> Endpoint:
        """NS/POD, POD (namespace default) or an IP; an IP of a pod is that pod."""
        import ipaddress

        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            key = text if "/" in text else f"default/{text}"
            if key not in self.index:
                raise ValidationError(None, "", f"no pod {key} in the input") from None
            return Endpoint(pod=self.index[key])
        pod = self.pod_by_ip.get(ip)
        return Endpoint(pod=pod) if pod is not None else Endpoint(ip=ip)

    def describe(self, ep: Endpoint) -> str:
        return self.pods[ep.pod].key if ep.pod is not None else str(ep.ip)
