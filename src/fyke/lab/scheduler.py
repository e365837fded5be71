"""The lab scheduler: binds pods without spec.nodeName to a Ready lab node.

The node with the fewest pods bound to it wins (ties by name), so pods spread evenly over
the nodes in the order they arrive. Nodes come from the API, so nodes added or removed at
runtime (`fykectl lab node add/remove`) count at once. It also removes pods bound to a
node that no longer exists, as the Kubernetes pod garbage collector does.

Usage: python -m fyke.lab.scheduler --kubeconfig K   (runs until SIGTERM)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections import Counter
from typing import Any

from lightkube import ApiError
from lightkube.types import PatchType

from fyke.kube import resources
from fyke.kube.client import async_client
from fyke.kube.reflector import Change, Reflector

log = logging.getLogger("fyke.lab.scheduler")
Obj = dict[str, Any]


def ready(node: Obj) -> bool:
    if node.get("metadata", {}).get("deletionTimestamp"):
        return False
    conditions = node.get("status", {}).get("conditions", []) or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def pick(nodes: list[str], pods: list[Obj]) -> str | None:
    """The least loaded of `nodes` (ties by name), counting pods bound to each."""
    if not nodes:
        return None
    load = Counter(p.get("spec", {}).get("nodeName", "") for p in pods)
    return min(sorted(nodes), key=lambda n: load[n])


class Scheduler:
    def __init__(self, kubeconfig: str) -> None:
        self.client: Any = async_client(kubeconfig, field_manager="fyke-lab-scheduler")
        self.pod_res: Any = resources.POD.resource()
        self.nodes = Reflector(self.client, resources.NODE, self._changed)
        self.pods = Reflector(self.client, resources.POD, self._changed)
        self.dirty = asyncio.Event()
        self.placed: dict[str, str] = {}  # pod uid -> node, until the watch shows the binding

    async def _changed(self, _: Change) -> None:
        self.dirty.set()

    async def run(self) -> None:
        tasks = [asyncio.create_task(r.run()) for r in (self.nodes, self.pods)]
        try:
            while True:
                await self.dirty.wait()
                self.dirty.clear()
                if self.nodes.synced.is_set() and self.pods.synced.is_set():
                    await self._pass()
        finally:
            for t in tasks:
                t.cancel()

    async def _pass(self) -> None:
        all_nodes = {n["metadata"]["name"] for n in self.nodes.cache.values()}
        nodes = [n["metadata"]["name"] for n in self.nodes.cache.values() if ready(n)]
        pods = list(self.pods.cache.values())
        seen = {p["metadata"].get("uid", "") for p in pods}
        self.placed = {
            uid: node
            for uid, node in self.placed.items()
            if uid in seen
            and not any(
                p["metadata"].get("uid") == uid and p.get("spec", {}).get("nodeName") for p in pods
            )
        }
        bound = [p for p in pods if p.get("spec", {}).get("nodeName")]
        bound += [{"spec": {"nodeName": n}} for n in self.placed.values()]
        for pod in sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp", "")):
            meta = pod["metadata"]
            node = pod.get("spec", {}).get("nodeName", "")
            if meta.get("deletionTimestamp"):
                continue
            if node and node not in all_nodes:
                log.info(
                    "%s/%s: node %s is gone; deleting the pod",
                    meta["namespace"],
                    meta["name"],
                    node,
                )
                with contextlib.suppress(ApiError):
                    await self.client.delete(
                        self.pod_res, meta["name"], namespace=meta["namespace"]
                    )
                continue
            if node or meta.get("uid", "") in self.placed:
                continue
            target = pick(nodes, bound)
            if target is None:
                continue  # no Ready node yet: bound when one comes
            try:
                await self.client.patch(
                    self.pod_res,
                    meta["name"],
                    {"spec": {"nodeName": target}},
                    namespace=meta["namespace"],
                    patch_type=PatchType.MERGE,
                )
            except ApiError as e:
                log.warning("binding %s/%s failed: %s", meta["namespace"], meta["name"], e)
                continue
            bound.append({"spec": {"nodeName": target}})
            self.placed[meta.get("uid", "")] = target


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kubeconfig", required=True)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    async def go() -> None:
        sched = Scheduler(args.kubeconfig)
        task = asyncio.create_task(sched.run())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        task.cancel()
        await sched.client.close()

    asyncio.run(go())


if __name__ == "__main__":
    main()
