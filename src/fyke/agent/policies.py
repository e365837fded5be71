"""The agent's policy view: reflectors on every kind that decides a verdict, and the
flows that realize it for this node's pods.

For now each agent compiles the whole cluster's policies itself (the policy package is
pure and fast); the controller that compiles once and serves each agent its span comes
with the controller work. Either way the flows come from the same compiler and realizer
that `fykectl policy matrix` uses, so what the datapath does is what the matrix says.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from lightkube import AsyncClient

from fyke.api.load import load_objects
from fyke.datapath.flow import Flow
from fyke.datapath.policy import policy_flows
from fyke.datapath.policy_realize import realize
from fyke.kube import resources
from fyke.kube.reflector import Change, Reflector
from fyke.policy.cluster import Cluster
from fyke.policy.compile import compile_policies
from fyke.policy.evaluate import Evaluator
from fyke.policy.model import Rule

log = logging.getLogger("fyke.agent.policies")

KINDS = (
    resources.NAMESPACE,
    resources.POD,
    resources.NODE,
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


NOT_POLICY = (resources.NAMESPACE, resources.POD, resources.NODE)


def policy_key(group: str, kind: str, meta: dict[str, Any]) -> str:
    """How realized.json names a policy object: GROUP/KIND/NAMESPACE/NAME."""
    return f"{group}/{kind}/{meta.get('namespace') or ''}/{meta.get('name', '')}"


class PolicyView:
    def __init__(self, client: AsyncClient, changed: Callable[[], Awaitable[None]]) -> None:
        self.changed = changed
        self.reflectors = [Reflector(client, k, self._on_change, backoff=2.0) for k in KINDS]
        self._dirty = asyncio.Event()
        self._evaluator: Evaluator | None = None
        self._rules: dict[int, Rule] = {}  # of the policies the installed flows came from
        self._objects: dict[str, list[object]] = {}  # policy key -> [uid, generation]
        self.realized: dict[str, list[object]] = {}  # the same, of the last flows() result
        self._tasks: list[asyncio.Task[None]] = []

    async def _on_change(self, _: Change) -> None:
        self._evaluator = None  # the cluster changed: compile again when next asked
        self._dirty.set()

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(r.run()) for r in self.reflectors]
        self._tasks.append(asyncio.create_task(self._loop()))
        # Pods and namespaces first: without them no flow can be right.
        for r in self.reflectors[:3]:
            await asyncio.wait_for(r.synced.wait(), 60)

    async def _loop(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(0.05)  # let a burst of changes settle
            self._dirty.clear()
            try:
                await self.changed()
            except Exception:
                log.exception("realizing policies failed; retrying on the next change")

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()

    def flows(self, local: dict[tuple[str, str], int], *, round: int) -> list[Flow]:
        """Policy flows for this node's pods, `local` mapping (namespace, name) to ofport."""
        if self._evaluator is None:
            self._evaluator = self._compile()
        evaluator = self._evaluator
        self._rules = {r.id: r for r in evaluator.policies.rules}
        self.realized = self._objects
        cluster = evaluator.cluster
        ofports = {
            cluster.index[f"{ns}/{name}"]: ofport
            for (ns, name), ofport in local.items()
            if f"{ns}/{name}" in cluster.index
        }
        return policy_flows(realize(evaluator, ofports), round=round)

    def rule(self, rule_id: int) -> Rule | None:
        """The rule behind a rule id found in a flow's cookie or packet-in."""
        return self._rules.get(rule_id)

    def _compile(self) -> Evaluator:
        """The cluster as the reflectors see it, compiled; kept until a watched object
        changes (a pod port coming or going alone needs no new compile)."""
        docs: list[dict[str, Any]] = []
        objects: dict[str, list[object]] = {}
        for r in self.reflectors:
            for obj in r.cache.values():
                version = f"{r.kind.group}/{r.kind.version}" if r.kind.group else r.kind.version
                docs.append({"apiVersion": version, "kind": r.kind.kind, **obj})
                if r.kind not in NOT_POLICY:
                    meta = obj.get("metadata", {})
                    objects[policy_key(r.kind.group, r.kind.kind, meta)] = [
                        meta.get("uid", ""),
                        meta.get("generation", 0),
                    ]
        self._objects = objects
        inv = load_objects(docs)
        for w in inv.warnings:
            log.warning("%s", w)
        return Evaluator(Cluster(inv.namespaces, inv.pods, inv.nodes), compile_policies(inv))
