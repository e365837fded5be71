"""Reflectors on every kind that decides a policy verdict, and the cluster they describe,
compiled. The controller compiles once for the cluster; an agent without a controller
compiles for itself. Either way the compiler is the one `fykectl policy matrix` uses.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from lightkube import AsyncClient

from fyke.api.load import load_objects
from fyke.kube import resources
from fyke.kube.reflector import Change, Reflector
from fyke.policy.cluster import Cluster
from fyke.policy.compile import compile_policies
from fyke.policy.evaluate import Evaluator

log = logging.getLogger("fyke.kube.policywatch")

KINDS = (
    resources.NAMESPACE,
    resources.POD,
    resources.NODE,
    resources.SERVICE,  # Antrea groups by serviceReference: the pods a Service selects
    resources.NETWORK_POLICY,
    resources.ADMIN_NETWORK_POLICY,
    resources.BASELINE_ADMIN_NETWORK_POLICY,
    resources.CLUSTER_NETWORK_POLICY,
    resources.ANTREA_CLUSTER_NETWORK_POLICY,
    resources.ANTREA_NETWORK_POLICY,
    resources.TIER,
    resources.CLUSTER_GROUP,
    resources.GROUP,
)
NOT_POLICY = (resources.NAMESPACE, resources.POD, resources.NODE, resources.SERVICE)
Versions = dict[str, tuple[str, int]]


def policy_key(group: str, kind: str, meta: dict[str, Any]) -> str:
    """How realized.json and spans name a policy object: GROUP/KIND/NAMESPACE/NAME."""
    return f"{group}/{kind}/{meta.get('namespace') or ''}/{meta.get('name', '')}"


def _spec_of(obj: dict[str, Any]) -> dict[str, Any]:
    meta = {
        k: v
        for k, v in (obj.get("metadata") or {}).items()
        if k not in ("resourceVersion", "managedFields")
    }
    return {**{k: v for k, v in obj.items() if k != "status"}, "metadata": meta}


def _pod_inputs(obj: dict[str, Any]) -> Any:
    """What api.core.parse_pod reads of a Pod."""
    meta, spec, status = (obj.get(k) or {} for k in ("metadata", "spec", "status"))
    ports = [(c.get("name"), c.get("ports")) for c in spec.get("containers") or ()]
    return (
        meta.get("labels"),
        ports,
        spec.get("nodeName"),
        spec.get("serviceAccountName"),
        spec.get("hostNetwork"),
        status.get("podIP"),
        status.get("podIPs"),
    )


def _node_inputs(obj: dict[str, Any]) -> Any:
    """What api.core.parse_node reads of a Node."""
    status = obj.get("status") or {}
    return ((obj.get("metadata") or {}).get("labels"), status.get("addresses"))


def _namespace_inputs(obj: dict[str, Any]) -> Any:
    meta = obj.get("metadata") or {}
    return (meta.get("labels"), meta.get("annotations"))


def _service_inputs(obj: dict[str, Any]) -> Any:
    """What api.core.parse_service reads of a Service (not its IPs or endpoints)."""
    return (obj.get("spec") or {}).get("selector")


_INPUTS: dict[resources.Kind, Callable[[dict[str, Any]], Any]] = {
    resources.POD: _pod_inputs,
    resources.NODE: _node_inputs,
    resources.NAMESPACE: _namespace_inputs,
    resources.SERVICE: _service_inputs,
}


class ClusterPolicies:
    """`changed()` is awaited (debounced) after any change that can alter a verdict; a
    policy object whose status alone changed (the controller writes it), or a pod, node or
    namespace whose change touches nothing the compiler reads, is not one."""

    def __init__(self, client: AsyncClient, changed: Callable[[], Awaitable[None]]) -> None:
        self.changed = changed
        self.reflectors = [
            Reflector(client, k, functools.partial(self._on_change, k), backoff=2.0) for k in KINDS
        ]
        self._dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def _on_change(self, kind: resources.Kind, change: Change) -> None:
        if change.type == "MODIFIED" and change.old is not None:
            inputs: Callable[[dict[str, Any]], Any] = _INPUTS.get(kind, _spec_of)
            if inputs(change.old) == inputs(change.object):
                return  # nothing a verdict depends on changed (a status heartbeat, say)
        self._dirty.set()

    async def start(self, *, wait_all: bool = False) -> None:
        self._tasks = [asyncio.create_task(r.run()) for r in self.reflectors]
        self._tasks.append(asyncio.create_task(self._loop()))
        # Pods, namespaces and nodes first: without them no flow can be right.
        for r in self.reflectors if wait_all else self.reflectors[:3]:
            await asyncio.wait_for(r.synced.wait(), 60)

    async def _loop(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(0.02)  # let a burst of changes settle
            self._dirty.clear()
            try:
                await self.changed()
            except Exception:
                log.exception("compiling policies failed; retrying on the next change")

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()

    def node_names(self) -> list[str]:
        return sorted(name for _, name in self.reflectors[2].cache)

    def snapshot(self) -> tuple[list[dict[str, Any]], Versions]:
        """Every watched object as a manifest, and (uid, generation) of every policy object."""
        docs: list[dict[str, Any]] = []
        versions: Versions = {}
        for r in self.reflectors:
            version = f"{r.kind.group}/{r.kind.version}" if r.kind.group else r.kind.version
            for obj in r.cache.values():
                docs.append({"apiVersion": version, "kind": r.kind.kind, **obj})
                if r.kind not in NOT_POLICY:
                    meta = obj.get("metadata", {})
                    versions[policy_key(r.kind.group, r.kind.kind, meta)] = (
                        meta.get("uid", ""),
                        int(meta.get("generation") or 0),
                    )
        return docs, versions


def compile_docs(docs: list[dict[str, Any]]) -> tuple[Evaluator, dict[str, str]]:
    """Manifests compiled into an evaluator, and the policy objects skipped as invalid
    (policy key -> what is wrong). Pure: runs in a worker thread."""
    inv = load_objects(docs)
    compiled = compile_policies(inv, strict=False)  # one bad object must not stop the rest
    for w in compiled.warnings:
        log.warning("%s", w)
    invalid = {
        policy_key(api.rpartition("/")[0], kind, {"namespace": ns, "name": name}): why
        for api, kind, ns, name, why in (*inv.invalid, *compiled.invalid)
    }
    ev = Evaluator(Cluster(inv.namespaces, inv.pods, inv.nodes), compiled)
    return ev, invalid
