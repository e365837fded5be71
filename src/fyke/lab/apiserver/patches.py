"""PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge
patch with the merge keys of the kinds served, and server-side apply."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from fyke.lab.apiserver.errors import ApiError, bad_request

# Strategic merge: lists merged by key, by field path (list positions omitted). Lists not
# named here are replaced whole, as for types without patchStrategy tags.
MERGE_KEYS: Mapping[str, Mapping[tuple[str, ...], str]] = {
    "Pod": {
        ("spec", "containers"): "name",
        ("spec", "initContainers"): "name",
        ("spec", "containers", "ports"): "containerPort",
        ("spec", "initContainers", "ports"): "containerPort",
        ("spec", "containers", "env"): "name",
        ("spec", "containers", "volumeMounts"): "mountPath",
        ("spec", "volumes"): "name",
        ("status", "conditions"): "type",
        ("status", "podIPs"): "ip",
        ("status", "containerStatuses"): "name",
    },
    "Node": {
        ("status", "addresses"): "type",
        ("status", "conditions"): "type",
        ("spec", "taints"): "key",
    },
    "Service": {("spec", "ports"): "port"},
    "*": {("metadata", "ownerReferences"): "uid"},
}
# Lists of scalars merged as sets.
MERGE_SCALARS: frozenset[tuple[str, ...]] = frozenset(
    {("metadata", "finalizers"), ("spec", "podCIDRs"), ("spec", "finalizers")}
)


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def json_patch(target: Any, ops: Any) -> Any:
    if not isinstance(ops, list):
        raise bad_request("a JSON patch must be a list of operations")
    doc = copy.deepcopy(target)
    for i, op in enumerate(ops):
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise bad_request(f"JSON patch operation {i} needs op and path")
        kind = op["op"]
        if kind in ("add", "replace", "test"):
            doc = _pointer_op(doc, op["path"], kind, op.get("value"))
        elif kind == "remove":
            doc = _pointer_op(doc, op["path"], kind, None)
        elif kind in ("move", "copy"):
            value = _pointer_get(doc, op["from"])
            if kind == "move":
                doc = _pointer_op(doc, op["from"], "remove", None)
            doc = _pointer_op(doc, op["path"], "add", copy.deepcopy(value))
        else:
            raise bad_request(f"unsupported JSON patch operation {kind!r}")
    return doc


def _tokens(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"invalid JSON pointer {path!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _pointer_get(doc: Any, path: str) -> Any:
    cur = doc
    for t in _tokens(path):
        cur = cur[int(t)] if isinstance(cur, list) else cur[t]
    return cur


def _pointer_op(doc: Any, path: str, kind: str, value: Any) -> Any:
    tokens = _tokens(path)
    if not tokens:
        return value
    try:
        parent = (
            _pointer_get(
                doc, "/" + "/".join(t.replace("~", "~0").replace("/", "~1") for t in tokens[:-1])
            )
            if len(tokens) > 1
            else doc
        )
        last = tokens[-1]
        if isinstance(parent, list):
            idx = len(parent) if last == "-" else int(last)
            if kind == "add":
                parent.insert(idx, value)
            elif kind == "remove":
                parent.pop(idx)
            elif kind == "replace":
                parent[idx] = value
            elif parent[idx] != value:
                raise bad_request(f"JSON patch test failed at {path}")
        else:
            if kind in ("add", "replace"):
                if kind == "replace" and last not in parent:
                    raise bad_request(f"JSON patch replace: {path} does not exist")
                parent[last] = value
            elif kind == "remove":
                del parent[last]
            elif parent.get(last) != value:
                raise bad_request(f"JSON patch test failed at {path}")
    except (KeyError, IndexError, ValueError, TypeError) as e:
        raise bad_request(f"JSON patch cannot apply at {path}: {e}") from None
    return doc


def strategic_merge_patch(target: Any, patch: Any, kind: str) -> Any:
    keys = {**MERGE_KEYS.get("*", {}), **MERGE_KEYS.get(kind, {})}
    return _smp(target, patch, (), keys)


def _smp(
    target: Any, patch: Any, path: tuple[str, ...], keys: Mapping[tuple[str, ...], str]
) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    out = dict(target) if isinstance(target, dict) else {}
    orders: dict[str, list[Any]] = {}
    for k, v in patch.items():
        if k.startswith("$setElementOrder/"):
            orders[k.split("/", 1)[1]] = v
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            field = k.split("/", 1)[1]
            out[field] = [x for x in out.get(field) or [] if x not in v]
            continue
        if k.startswith("$retainKeys") or k == "$patch":
            continue
        sub = (*path, k)
        if v is None:
            out.pop(k, None)
        elif isinstance(v, list) and sub in keys:
            out[k] = _merge_list(out.get(k) or [], v, sub, keys)
        elif isinstance(v, list) and sub in MERGE_SCALARS:
            merged = list(out.get(k) or [])
            merged += [x for x in v if x not in merged]
            out[k] = merged
        else:
            merged = _smp(out.get(k), v, sub, keys)
            if merged is None:
                out.pop(k, None)
            else:
                out[k] = merged
    for field, order in orders.items():
        sub = (*path, field)
        if sub in keys and isinstance(out.get(field), list):
            out[field] = _order(out[field], order, keys[sub])
    return out


def _merge_list(
    current: list[Any], patch: list[Any], path: tuple[str, ...], keys: Mapping[tuple[str, ...], str]
) -> list[Any]:
    key = keys[path]
    out = [copy.deepcopy(x) for x in current]
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            if isinstance(item, dict) and item.get("$patch") == "replace":
                continue
            raise bad_request(f"{'.'.join(path)}: each item needs the merge key {key!r}")
        pos = next((i for i, x in enumerate(out) if _same_item(x, item, key, path)), None)
        if item.get("$patch") == "delete":
            if pos is not None:
                out.pop(pos)
            continue
        if pos is None:
            out.append(_smp({}, item, path, keys))
        else:
            out[pos] = _smp(out[pos], item, path, keys)
    return out


# Container ports are keyed by containerPort in patches, but one port number may be served
# on TCP and UDP: when the patch item names its protocol, it must match too (as
# server-side apply's (containerPort, protocol) list-map key does).
SECONDARY_KEYS: Mapping[tuple[str, ...], tuple[str, str]] = {
    ("spec", "containers", "ports"): ("protocol", "TCP"),
    ("spec", "initContainers", "ports"): ("protocol", "TCP"),
    ("spec", "ports"): ("protocol", "TCP"),
}


def _same_item(x: Any, item: dict[str, Any], key: str, path: tuple[str, ...]) -> bool:
    if not isinstance(x, dict) or x.get(key) != item[key]:
        return False
    second = SECONDARY_KEYS.get(path)
    if second is None or second[0] not in item:
        return True
    field, default = second
    return bool(x.get(field, default) == item.get(field, default))


def _order(items: list[Any], order: list[Any], key: str) -> list[Any]:
    rank = {json.dumps(o.get(key)): i for i, o in enumerate(order) if isinstance(o, dict)}
    return sorted(
        items,
        key=lambda x: rank.get(json.dumps(x.get(key)) if isinstance(x, dict) else "", len(rank)),
    )


def apply(
    live: dict[str, Any] | None, applied: dict[str, Any], previous: dict[str, Any] | None, kind: str
) -> dict[str, Any]:
    """Server-side apply for one manager: fields it applied before and leaves out now are
    removed; what it applies now is merged in (lists with merge keys by key)."""
    base = copy.deepcopy(live) if live is not None else {}
    if previous is not None:
        base = _drop_released(base, previous, applied)
    keys = {**MERGE_KEYS.get("*", {}), **MERGE_KEYS.get(kind, {})}
    out = _smp(base, applied, (), keys)
    if not isinstance(out, dict):
        raise ApiError(400, "BadRequest", "an applied configuration must be an object")
    return out


def _drop_released(live: Any, previous: Any, now: Any) -> Any:
    if not isinstance(live, dict) or not isinstance(previous, dict):
        return live
    out = dict(live)
    now_map = now if isinstance(now, dict) else {}
    for k, v in previous.items():
        if k in ("apiVersion", "kind") or (k == "metadata" and not isinstance(v, dict)):
            continue
        if k not in now_map:
            out.pop(k, None)
        elif isinstance(v, dict):
            out[k] = _drop_released(out.get(k), v, now_map[k])
    return out
