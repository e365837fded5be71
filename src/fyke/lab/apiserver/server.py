"""The lab's Kubernetes-compatible API server over aiohttp: discovery, CRUD, patch,
apply, watch and Table responses for the resources in registry.RESOURCES."""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from fyke.api.errors import ValidationError
from fyke.api.fields import Reader
from fyke.api.selectors import LabelSelector, parse_selector_string
from fyke.lab.apiserver import discovery
from fyke.lab.apiserver.errors import ApiError, bad_request, expired
from fyke.lab.apiserver.objects import Objects
from fyke.lab.apiserver.registry import Registry, Resource
from fyke.lab.apiserver.store import Event, Store
from fyke.lab.apiserver.tables import table

Obj = dict[str, Any]
DEFAULT_WATCH_SECONDS = 1800
# A deleted namespace stays Terminating this long, so deletes of what it holds that
# follow right after (`kubectl delete -f` of a namespace and its pods) still succeed.
NAMESPACE_GRACE_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Target:
    res: Resource
    namespace: str  # "" for cluster-scoped or across namespaces
    name: str
    subresource: str


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(obj), content_type="application/json")


def _status_response(e: ApiError) -> web.Response:
    return _json(e.status(), e.code)


class ApiServer:
    def __init__(self, store: Store, token: str, *, bookmark_seconds: float = 5.0) -> None:
        self.registry = Registry()
        self.store = store
        self.objects = Objects(store, self.registry)
        self.token = token
        self.bookmark_seconds = bookmark_seconds
        self.app = web.Application(middlewares=[self._middleware], client_max_size=16 << 20)
        self.app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self.app.on_startup.append(self._finish_terminating)  # type: ignore[arg-type]
        self._ensure_builtin_namespaces()

    async def _finish_terminating(self, _: web.Application) -> None:
        """Namespaces a previous run left Terminating go now."""
        for ns in self.store.items("", "namespaces", None):
            if ns.get("status", {}).get("phase") == "Terminating":
                self.objects.finalize_namespace(ns["metadata"]["name"])

    def _ensure_builtin_namespaces(self) -> None:
        res = self.registry.lookup("", "v1", "namespaces")
        assert res is not None
        for ns in ("default", "kube-system", "kube-public"):
            if self.store.get("", "namespaces", "", ns) is None:
                self.objects.create(res, "", {"metadata": {"name": ns}})

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path not in ("/healthz", "/livez", "/readyz"):
            auth = request.headers.get("Authorization", "")
            given = auth[7:] if auth.startswith("Bearer ") else ""
            if not given or not hmac.compare_digest(given, self.token):
                return _status_response(ApiError(401, "Unauthorized", "Unauthorized"))
        try:
            return await handler(request)
        except ApiError as e:
            return _status_response(e)

    # --- routing -----------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if request.method == "GET":
            doc = discovery.document(self.registry, parts)
            if doc is not None:
                return _json(doc)
            if parts in (["healthz"], ["livez"], ["readyz"]):
                return web.Response(text="ok")
        target = self._target(parts)
        if target is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        m = request.method
        if m == "GET":
            if target.name:
                return await self._get(request, target)
            return await self._list_or_watch(request, target)
        if m == "POST" and not target.name:
            return await self._create(request, target)
        if m == "PUT" and target.name:
            return await self._update(request, target)
        if m == "PATCH" and target.name:
            return await self._patch(request, target)
        if m == "DELETE" and target.name:
            return await self._delete(request, target)
        if m == "DELETE":
            return await self._delete_collection(request, target)
        raise ApiError(405, "MethodNotAllowed", f"{m} is not supported here")

    def _target(self, parts: list[str]) -> Target | None:
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        namespace = ""
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            return None
        res = self.registry.lookup(group, version, rest[0])
        if res is None:
            return None
        if namespace and not res.namespaced:
            return None
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        if sub and (sub != "status" or not res.status):
            return None
        return Target(res, namespace, name, sub)

    # --- handlers ----------------------------------------------------------------------

    @staticmethod
    async def _body(request: web.Request) -> Any:
        if "protobuf" in request.headers.get("Content-Type", ""):
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the lab API server speaks JSON only, not protobuf; use "
                "`kubectl create -f` or `kubectl apply -f`",
            )
        raw = await request.read()
        try:
            return json.loads(raw or b"null")
        except json.JSONDecodeError:
            import yaml

            try:
                return yaml.safe_load(raw)
            except yaml.YAMLError as e:
                raise bad_request(f"the body is neither JSON nor YAML: {e}") from None

    def _render(self, request: web.Request, res: Resource, obj: Obj) -> web.Response:
        if _wants_table(request):
            return _json(table(res.kind, [obj]))
        return _json(obj)

    async def _get(self, request: web.Request, t: Target) -> web.StreamResponse:
        return self._render(request, t.res, self.objects.get(t.res, t.namespace, t.name))

    async def _create(self, request: web.Request, t: Target) -> web.StreamResponse:
        if t.res.namespaced and not t.namespace:
            raise bad_request(f"{t.res.plural} must be created in a namespace")
        obj = self.objects.create(
            t.res,
            t.namespace,
            await self._body(request),
            dry_run=_dry_run(request),
            manager=request.query.get("fieldManager", ""),
        )
        return _json(obj, 201)

    async def _update(self, request: web.Request, t: Target) -> web.StreamResponse:
        obj = self.objects.update(
            t.res,
            t.namespace,
            t.name,
            await self._body(request),
            subresource=t.subresource,
            dry_run=_dry_run(request),
        )
        return _json(obj)

    async def _patch(self, request: web.Request, t: Target) -> web.StreamResponse:
        ctype = request.headers.get("Content-Type", "")
        raw = await request.read()
        manager = request.query.get("fieldManager", "")
        applying = ctype.startswith("application/apply-patch")
        if applying and not manager:
            raise bad_request("fieldManager is required for apply requests")
        ns = t.namespace if t.res.namespaced else ""
        existed = self.store.get(t.res.group, t.res.plural, ns, t.name) is not None
        obj = self.objects.patch(
            t.res,
            t.namespace,
            t.name,
            ctype,
            raw,
            subresource=t.subresource,
            dry_run=_dry_run(request),
            manager=manager,
        )
        return _json(obj, 201 if applying and not existed else 200)

    async def _delete(self, request: web.Request, t: Target) -> web.StreamResponse:
        pre = ""
        raw = await request.read()
        if raw:
            try:
                opts = json.loads(raw)
                pre = ((opts or {}).get("preconditions") or {}).get("resourceVersion") or ""
            except json.JSONDecodeError:
                pass
        obj = self.objects.delete(
            t.res, t.namespace, t.name, dry_run=_dry_run(request), precondition_rv=pre
        )
        if t.res.kind == "Namespace" and not _dry_run(request):
            asyncio.get_running_loop().call_later(
                NAMESPACE_GRACE_SECONDS, self.objects.finalize_namespace, t.name
            )
        return _json(obj)

    async def _delete_collection(self, request: web.Request, t: Target) -> web.StreamResponse:
        match = self._matcher(request, t)
        items = [
            o for o in self.store.items(t.res.group, t.res.plural, t.namespace or None) if match(o)
        ]
        for o in items:
            self.objects.delete(t.res, o["metadata"].get("namespace", ""), o["metadata"]["name"])
        return _json(
            {
                "kind": f"{t.res.kind}List",
                "apiVersion": t.res.api_version,
                "metadata": {"resourceVersion": str(self.store.rv)},
                "items": items,
            }
        )

    # --- list and watch ---------------------------------------------------------------

    def _matcher(self, request: web.Request, t: Target) -> Callable[[Obj], bool]:
        labels = _label_selector(request.query.get("labelSelector", ""))
        fields = _field_selector(t.res, request.query.get("fieldSelector", ""))

        def match(obj: Obj) -> bool:
            meta = obj.get("metadata", {})
            if t.namespace and meta.get("namespace") != t.namespace:
                return False
            if labels is not None and not labels.matches(meta.get("labels") or {}):
                return False
            return all(fn(obj) for fn in fields)

        return match

    async def _list_or_watch(self, request: web.Request, t: Target) -> web.StreamResponse:
        match = self._matcher(request, t)
        if request.query.get("watch") in ("1", "true", "True"):
            return await self._watch(request, t, match)
        items = [
            o for o in self.store.items(t.res.group, t.res.plural, t.namespace or None) if match(o)
        ]
        meta = {"resourceVersion": str(self.store.rv)}
        if _wants_table(request):
            return _json(table(t.res.kind, items, meta))
        return _json(
            {
                "kind": f"{t.res.kind}List",
                "apiVersion": t.res.api_version,
                "metadata": meta,
                "items": items,
            }
        )

    async def _watch(
        self, request: web.Request, t: Target, match: Callable[[Obj], bool]
    ) -> web.StreamResponse:
        res = t.res
        rv_text = request.query.get("resourceVersion", "")
        try:
            timeout = float(request.query.get("timeoutSeconds") or DEFAULT_WATCH_SECONDS)
        except ValueError:
            raise bad_request("timeoutSeconds must be a number") from None
        bookmarks = request.query.get("allowWatchBookmarks") in ("1", "true", "True")
        as_table = _wants_table(request)

        def wanted(ev: Event) -> bool:
            return ev.group == res.group and ev.plural == res.plural and match(ev.object)

        initial: list[tuple[str, Obj]] = []
        backlog: list[Event] = []
        if rv_text in ("", "0"):
            # No resourceVersion: the current state as ADDED events, then changes.
            watcher, _ = self.store.watch(self.store.rv, wanted)
            initial = [
                ("ADDED", o)
                for o in self.store.items(res.group, res.plural, t.namespace or None)
                if match(o)
            ]
        else:
            try:
                since = int(rv_text)
            except ValueError:
                raise bad_request(f"invalid resourceVersion {rv_text!r}") from None
            if since > self.store.rv:
                raise ApiError(
                    504,
                    "Timeout",
                    f"Too large resource version: {since}, "
                    f"current resource version: {self.store.rv}",
                )
            # Too old a resourceVersion raises 410 Gone before the stream starts, as the
            # API server's watch cache answers; clients relist.
            watcher, backlog = self.store.watch(since, wanted)
        resp = await self._stream_start(request)
        first = True

        async def emit(kind: str, obj: Obj) -> None:
            nonlocal first
            body: Obj = obj
            if as_table:
                body = table(res.kind, [obj], headers=first)
            first = False
            await _send(resp, {"type": kind, "object": body})

        deadline = time.monotonic() + timeout
        try:
            for kind, obj in initial:
                await emit(kind, obj)
            for ev in backlog:
                await emit(ev.type, ev.object)
            next_bookmark = time.monotonic() + self.bookmark_seconds
            while True:
                now = time.monotonic()
                if now >= deadline:
                    break
                wait = deadline - now
                if bookmarks:
                    wait = min(wait, max(next_bookmark - now, 0))
                try:
                    ev_or_none = await asyncio.wait_for(watcher.queue.get(), timeout=wait)
                except TimeoutError:
                    if bookmarks and time.monotonic() >= next_bookmark:
                        await _send(
                            resp,
                            {
                                "type": "BOOKMARK",
                                "object": {
                                    "kind": res.kind,
                                    "apiVersion": res.api_version,
                                    "metadata": {"resourceVersion": str(self.store.rv)},
                                },
                            },
                        )
                        next_bookmark = time.monotonic() + self.bookmark_seconds
                    continue
                if ev_or_none is None:
                    break  # the server is stopping
                await emit(ev_or_none.type, ev_or_none.object)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.store.unwatch(watcher)
        return resp

    async def _stream_start(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
        )
        await resp.prepare(request)
        return resp


async def _send(resp: web.StreamResponse, event: Obj) -> None:
    await resp.write(json.dumps(event).encode() + b"\n")


def _wants_table(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    first = accept.split(",")[0]
    return "as=Table" in first


def _dry_run(request: web.Request) -> bool:
    return request.query.get("dryRun") == "All"


def _label_selector(text: str) -> LabelSelector | None:
    if not text:
        return None
    try:
        return parse_selector_string(Reader(None), text, "labelSelector")  # type: ignore[arg-type]
    except ValidationError as e:
        raise bad_request(f"unable to parse requirement: {e.message}") from None


FIELD_PATHS: dict[str, tuple[str, ...]] = {
    "metadata.name": ("metadata", "name"),
    "metadata.namespace": ("metadata", "namespace"),
    "spec.nodeName": ("spec", "nodeName"),
    "status.phase": ("status", "phase"),
    "status.podIP": ("status", "podIP"),
}


def _field_selector(res: Resource, text: str) -> list[Callable[[Obj], bool]]:
    out: list[Callable[[Obj], bool]] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        negate = "!=" in part
        key, _, value = part.partition("!=" if negate else ("==" if "==" in part else "="))
        key = key.strip()
        found = FIELD_PATHS.get(key)
        if found is None or (
            key in ("spec.nodeName", "status.phase", "status.podIP") and res.kind != "Pod"
        ):
            raise bad_request(
                f'"{key}" is not a known field selector: only "metadata.name", '
                '"metadata.namespace"'
                + (', "spec.nodeName", "status.phase"' if res.kind == "Pod" else "")
            )

        path: tuple[str, ...] = found

        def check(
            obj: Obj,
            path: tuple[str, ...] = path,
            value: str = value.strip(),
            negate: bool = negate,
        ) -> bool:
            cur: Any = obj
            for p in path:
                cur = cur.get(p, "") if isinstance(cur, dict) else ""
            return (str(cur or "") == value) != negate

        out.append(check)
    return out


__all__ = ["ApiServer", "expired"]
