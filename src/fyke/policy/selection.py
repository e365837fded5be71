"""Which pods a PodTerm selects, answered from label indexes rather than by scanning.

A term with fixed namespaces or an equality namespace selector narrows the namespaces by
index; an equality pod selector then narrows the pods of each namespace by index. What
is left is checked in full, so the answer is exact for every selector.
"""

from __future__ import annotations

from collections import defaultdict

from fyke.api.core import Pod
from fyke.api.selectors import LabelSelector
from fyke.policy.cluster import Cluster
from fyke.policy.model import PodTerm


class Selection:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._pods_in_ns: dict[str, list[int]] = defaultdict(list)
        self._pods_by_label: dict[tuple[str, str, str], list[int]] = defaultdict(list)
        for i, pod in enumerate(cluster.pods):
            if pod.host_network:
                continue  # policies neither protect nor select host-network pods
            self._pods_in_ns[pod.namespace].append(i)
            for k, v in pod.labels.items():
                self._pods_by_label[(pod.namespace, k, v)].append(i)
        self._ns_by_label: dict[tuple[str, str], list[str]] = defaultdict(list)
        for ns in cluster.namespaces.values():
            for k, v in ns.labels.items():
                self._ns_by_label[(k, v)].append(ns.name)
        self._ns_cache: dict[LabelSelector, list[str]] = {}

    def namespaces(self, sel: LabelSelector) -> list[str]:
        found = self._ns_cache.get(sel)
        if found is None:
            pairs = sel.equality_pairs()
            if pairs:
                candidates = min((self._ns_by_label.get(p, []) for p in pairs), key=len)
            else:
                candidates = list(self.cluster.namespaces)
            labels = self.cluster.namespaces
            found = [n for n in candidates if sel.matches(labels[n].labels)]
            self._ns_cache[sel] = found
        return found

    def pods(self, term: PodTerm, subject: Pod | None = None) -> list[int]:
        """Pods the term selects; relative terms are seen from the pod `subject`."""
        if term.relative and subject is None:
            return []
        if term.namespaces is not None:
            names = [n for n in term.namespaces if n in self.cluster.namespaces]
            if term.namespace_selector is not None:
                names = [
                    n
                    for n in names
                    if term.namespace_selector.matches(self.cluster.namespaces[n].labels)
                ]
        elif term.namespace_selector is not None:
            names = self.namespaces(term.namespace_selector)
        elif term.same_namespace and subject is not None:
            names = [subject.namespace]
        else:
            names = list(self.cluster.namespaces)
        if term.relative:
            assert subject is not None
            names = [n for n in names if self._related(term, n, subject.namespace)]
        out: list[int] = []
        pods = self.cluster.pods
        sel = term.pod_selector
        pairs = sel.equality_pairs() if sel is not None else ()
        for n in names:
            if pairs:
                candidates = min(
                    (self._pods_by_label.get((n, k, v), []) for k, v in pairs), key=len
                )
            else:
                candidates = self._pods_in_ns.get(n, [])
            for i in candidates:
                pod = pods[i]
                if sel is not None and not sel.matches(pod.labels):
                    continue
                if term.service_account is not None and term.service_account != (
                    pod.namespace,
                    pod.service_account,
                ):
                    continue
                out.append(i)
        return out

    def _related(self, term: PodTerm, peer_ns: str, subject_ns: str) -> bool:
        own = self.cluster.namespaces[subject_ns].labels
        labels = self.cluster.namespaces[peer_ns].labels
        if term.same_namespace and peer_ns != subject_ns:
            return False
        for k in term.same_labels:
            if k not in own or labels.get(k) != own[k]:
                return False
        return not (
            term.not_same_labels and all(labels.get(k) == own.get(k) for k in term.not_same_labels)
        )
