"""What `fykectl lab` does through the API: register nodes, apply and delete manifests,
wait for pods, list running pods."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from lightkube import ApiError, AsyncClient
from lightkube.types import PatchType

from fyke.kube import resources
from fyke.kube.client import async_client

Obj = dict[str, Any]


def client(kubeconfig: str) -> AsyncClient:
    return async_client(kubeconfig, field_manager="fykectl-lab")


def _target(obj: Obj) -> tuple[Any, str, str | None]:
    """(lightkube resource, name, namespace or None) of a manifest."""
    kind = resources.kind_of(obj.get("apiVersion", ""), obj.get("kind", ""))
    if kind is None:
        raise ValueError(f"the lab does not serve {obj.get('apiVersion')}/{obj.get('kind')}")
    meta = obj.get("metadata") or {}
    ns = (meta.get("namespace") or "default") if kind.namespaced else None
    return kind.resource(), meta["name"], ns


async def apply(c: Any, objs: list[Obj], applied: list[Obj] | None = None) -> list[str]:
    """Server-side apply, namespaces first; returns what was done, kubectl-style, and
    appends the objects as the server returned them to `applied`."""
    done = []
    for obj in sorted(objs, key=lambda o: o.get("kind") != "Namespace"):
        res, name, ns = _target(obj)
        got = await c.patch(res, name, obj, namespace=ns, patch_type=PatchType.APPLY, force=True)
        if applied is not None:
            applied.append({"apiVersion": obj.get("apiVersion", ""), **got.to_dict()})
        done.append(f"{obj['kind'].lower()}/{name} applied" + (f" in {ns}" if ns else ""))
    return done


async def delete(c: Any, objs: list[Obj]) -> list[str]:
    done = []
    for obj in reversed(objs):
        res, name, ns = _target(obj)
        try:
            await c.delete(res, name, namespace=ns)
            done.append(f"{obj['kind'].lower()}/{name} deleted" + (f" in {ns}" if ns else ""))
        except ApiError as e:
            if e.status.code != 404:
                raise
            done.append(f"{obj['kind'].lower()}/{name} not found")
    return done


def realized_key(obj: Obj) -> str | None:
    """The key agents write to realized.json for a policy object; None for other kinds."""
    kind = resources.kind_of(obj.get("apiVersion", ""), obj.get("kind", ""))
    if kind is None or kind in (resources.NAMESPACE, resources.POD, resources.NODE):
        return None
    meta = obj.get("metadata") or {}
    ns = (meta.get("namespace") or "default") if kind.namespaced else ""
    return f"{kind.group}/{kind.kind}/{ns}/{meta.get('name', '')}"


async def wait_realized(
    node_dirs: list[Path], objs: list[Obj], *, gone: bool = False, timeout: float = 120.0
) -> None:
    """Until every node's agent has installed the flows of these policy objects (at their
    generation), or of their removal."""
    want: dict[str, tuple[str, int]] = {}
    for o in objs:
        key = realized_key(o)
        if key is not None:
            meta = o.get("metadata") or {}
            want[key] = (meta.get("uid", ""), int(meta.get("generation") or 0))
    if not want:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lagging = []
        for d in node_dirs:
            try:
                realized = json.loads((d / "realized.json").read_text())
            except (OSError, ValueError):
                realized = {}
            for key, (uid, gen) in want.items():
                have = realized.get(key)
                ok = (
                    have is None
                    if gone
                    else (have is not None and (not uid or have[0] == uid) and have[1] >= gen)
                )
                if not ok:
                    lagging.append(f"{d.name}: {key}")
        if not lagging:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"not realized after {timeout:.0f}s: {', '.join(lagging[:5])}")


async def pods(c: Any) -> list[Obj]:
    res: Any = resources.POD.resource()
    return [p.to_dict() async for p in c.list(res, namespace="*")]


async def wait_pods(
    c: AsyncClient, keys: set[str], *, gone: bool = False, timeout: float = 120.0
) -> None:
    """Until every ns/name in keys is Running with an IP (or gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = {
            f"{p['metadata']['namespace']}/{p['metadata']['name']}": p for p in await pods(c)
        }
        if gone and not keys & set(current):
            return
        if not gone and all(
            k in current
            and current[k].get("status", {}).get("phase") == "Running"
            and current[k].get("status", {}).get("podIP")
            for k in keys
        ):
            return
        await asyncio.sleep(0.3)
    raise TimeoutError(f"pods not {'gone' if gone else 'running'} after {timeout:.0f}s")


async def register_node(c: Any, name: str, pod_cidr: str, ip: str) -> None:
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]},
    }
    res: Any = resources.NODE.resource()
    await c.patch(res, name, node, patch_type=PatchType.APPLY, force=True)
    await c.patch(
        res.Status,
        name,
        {
            "status": {
                "addresses": [
                    {"type": "InternalIP", "address": ip},
                    {"type": "Hostname", "address": name},
                ],
                "conditions": [{"type": "Ready", "status": "True", "reason": "FykeLab"}],
                "nodeInfo": {"kubeletVersion": "v1.32.0-fyke-lab"},
            }
        },
        patch_type=PatchType.MERGE,
    )
