"""meta.k8s.io/v1 Table responses, so `kubectl get` prints proper columns."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

Obj = dict[str, Any]
Column = tuple[str, str, int, Callable[[Obj], Any]]  # name, type, priority, cell


def _age(obj: Obj) -> str:
    ts = obj.get("metadata", {}).get("creationTimestamp")
    if not ts:
        return "<unknown>"
    created = dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    secs = int((dt.datetime.now(dt.UTC) - created).total_seconds())
    if secs < 120:
        return f"{max(secs, 0)}s"
    if secs < 7200:
        return f"{secs // 60}m"
    if secs < 172800:
        return f"{secs // 3600}h"
    return f"{secs // 86400}d"


def _get(obj: Obj, *path: str, default: Any = "<none>") -> Any:
    cur: Any = obj
    for p in path:
        if not isinstance(cur, dict) or p not in cur:
            return default
        cur = cur[p]
    return cur


def _pod_ready(obj: Obj) -> str:
    containers = _get(obj, "spec", "containers", default=[]) or []
    statuses = _get(obj, "status", "containerStatuses", default=[]) or []
    ready = sum(1 for s in statuses if s.get("ready"))
    return f"{ready}/{len(containers)}"


def _node_status(obj: Obj) -> str:
    for c in _get(obj, "status", "conditions", default=[]) or []:
        if c.get("type") == "Ready":
            return "Ready" if c.get("status") == "True" else "NotReady"
    return "Unknown"


def _ports(obj: Obj) -> str:
    ports = _get(obj, "spec", "ports", default=[]) or []
    return ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in ports) or "<none>"


def _pod_selector(obj: Obj) -> str:
    sel = _get(obj, "spec", "podSelector", default={}) or {}
    labels = sel.get("matchLabels") or {}
    text = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    if sel.get("matchExpressions"):
        text = (text + "," if text else "") + "<expressions>"
    return text or "<none>"


NAME: Column = ("Name", "string", 0, lambda o: o["metadata"]["name"])
AGE: Column = ("Age", "string", 0, _age)

COLUMNS: dict[str, list[Column]] = {
    "Namespace": [NAME, ("Status", "string", 0, lambda o: _get(o, "status", "phase")), AGE],
    "Pod": [
        NAME,
        ("Ready", "string", 0, _pod_ready),
        ("Status", "string", 0, lambda o: _get(o, "status", "phase", default="Pending")),
        ("Restarts", "integer", 0, lambda o: 0),
        AGE,
        ("IP", "string", 1, lambda o: _get(o, "status", "podIP")),
        ("Node", "string", 1, lambda o: _get(o, "spec", "nodeName")),
    ],
    "Node": [
        NAME,
        ("Status", "string", 0, _node_status),
        ("Roles", "string", 0, lambda o: "<none>"),
        AGE,
        ("Version", "string", 0, lambda o: _get(o, "status", "nodeInfo", "kubeletVersion")),
        (
            "Internal-IP",
            "string",
            1,
            lambda o: next(
                (
                    a["address"]
                    for a in _get(o, "status", "addresses", default=[]) or []
                    if a.get("type") == "InternalIP"
                ),
                "<none>",
            ),
        ),
    ],
    "Service": [
        NAME,
        ("Type", "string", 0, lambda o: _get(o, "spec", "type", default="ClusterIP")),
        ("Cluster-IP", "string", 0, lambda o: _get(o, "spec", "clusterIP")),
        ("Port(s)", "string", 0, _ports),
        AGE,
    ],
    "NetworkPolicy": [NAME, ("Pod-Selector", "string", 0, _pod_selector), AGE],
    "AdminNetworkPolicy": [
        NAME,
        ("Priority", "integer", 0, lambda o: _get(o, "spec", "priority")),
        AGE,
    ],
    "ClusterNetworkPolicy": [
        NAME,
        ("Tier", "string", 0, lambda o: _get(o, "spec", "tier", default="application")),
        ("Priority", "number", 0, lambda o: _get(o, "spec", "priority")),
        AGE,
    ],
    "Tier": [NAME, ("Priority", "integer", 0, lambda o: _get(o, "spec", "priority")), AGE],
    "Traceflow": [NAME, ("Phase", "string", 0, lambda o: _get(o, "status", "phase")), AGE],
}


def columns(kind: str) -> list[Column]:
    return COLUMNS.get(kind, [NAME, AGE])


def table(
    kind: str, objects: list[Obj], meta: dict[str, Any] | None = None, headers: bool = True
) -> dict[str, Any]:
    cols = columns(kind)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta or {},
        "columnDefinitions": [
            {
                "name": n,
                "type": t,
                "format": "name" if n == "Name" else "",
                "description": n,
                "priority": p,
            }
            for n, t, p, _ in cols
        ]
        if headers
        else [],
        "rows": [
            {
                "cells": [fn(o) for _, _, _, fn in cols],
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": o.get("metadata", {}),
                },
            }
            for o in objects
        ],
    }
