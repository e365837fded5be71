"""The controller's core: compile the cluster, cut one span per node, and send each
connected agent the changes of its own span; collect what agents report realized and write
Antrea-style status onto the policy objects.

HTTP API (HTTPS; every call carries `Authorization: Bearer NODE-TOKEN`, see auth.py):
  GET  /v1/span/watch      newline-delimited JSON: {"type": "SNAPSHOT", "span": ...}
                           first, then {"type": "UPDATE", "events": [...], "versions":
                           {...}} per change (datapath.span.diff) and {"type": "PING"}
                           every PING_SECONDS; the node is the token's
  POST /v1/span/realized   {"versions": {POLICY: [uid, generation]}}: the policy versions
                           whose flows the node has installed
  POST /v1/evaluate        {"from": "NS/POD"|IP, "to": ..., "port": "80/TCP"}: the verdict
                           for that connection in the cluster as it is now, and why (the
                           JSON of `fykectl policy explain`; ?format=text for its text).
                           Needs the admin token (ADMIN's node token; see auth.py)
  GET  /healthz            "ok" (no token)
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from typing import Any

from aiohttp import web
from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.types import PatchType

from fyke.api.errors import ValidationError
from fyke.controller.auth import ADMIN, node_of
from fyke.datapath.span import NodeSpan, cluster_spans, diff, span_json
from fyke.kube import resources
from fyke.kube.policywatch import ClusterPolicies, Versions, compile_docs
from fyke.policy.evaluate import Evaluator
from fyke.policy.explain import decision_json, decision_text
from fyke.policy.matrix import PortQuery

log = logging.getLogger("fyke.controller")
PING_SECONDS = 10.0
# Updates a watcher may have pending; one that falls further behind (a stalled agent) is
# cut off and, when it comes back, starts over from a snapshot.
MAX_PENDING = 1000

# Kinds that carry Antrea's NetworkPolicyStatus (status.phase, observedGeneration,
# currentNodesRealized, desiredNodesRealized).
STATUS_KINDS = {
    (k.group, k.kind): k
    for k in (resources.ANTREA_CLUSTER_NETWORK_POLICY, resources.ANTREA_NETWORK_POLICY)
}


def policy_status(
    generation: int, desired: int, current: int, invalid: str | None = None
) -> dict[str, Any]:
    """Antrea's NetworkPolicyStatus for a policy realized on `current` of `desired` nodes;
    a policy the controller could not read is Failed, saying why."""
    if invalid is not None:
        return {
            "phase": "Failed",
            "observedGeneration": generation,
            "currentNodesRealized": 0,
            "desiredNodesRealized": 0,
            "conditions": [
                {"type": "Realizable", "status": "False", "reason": "Invalid", "message": invalid}
            ],
        }
    return {
        "phase": "Realized" if current >= desired else "Realizing",
        "observedGeneration": generation,
        "currentNodesRealized": current,
        "desiredNodesRealized": desired,
    }


class SpanController:
    def __init__(self, client: AsyncClient, secret: bytes, *, write_status: bool = True) -> None:
        self.client: Any = client
        self.secret = secret
        self.write_status = write_status
        self.policies = ClusterPolicies(client, self._recompute)
        self.spans: dict[str, NodeSpan] = {}
        self.versions: Versions = {}
        self.invalid: dict[str, str] = {}  # policy -> why it was skipped
        self.evaluator: Evaluator | None = None  # the cluster as last compiled
        self.watchers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)
        self.realized: dict[str, Versions] = {}  # node -> what it reported
        self.synced = asyncio.Event()
        self._status_dirty = asyncio.Event()
        self._written: dict[str, dict[str, Any]] = {}  # policy -> status last written
        self._tasks: list[asyncio.Task[None]] = []
        self._handlers: dict[asyncio.Queue[dict[str, Any]], asyncio.Task[Any]] = {}
        self._compiling = asyncio.Lock()

    # --- compile and fan out ------------------------------------------------------------

    async def start(self) -> None:
        await self.policies.start(wait_all=True)
        await self._recompute()  # nothing may have changed since the lists
        self._tasks.append(asyncio.create_task(self._status_loop()))

    async def stop(self) -> None:
        await self.policies.stop()
        for t in self._tasks:
            t.cancel()

    async def _recompute(self) -> None:
        async with self._compiling:  # one at a time: an older one must not land last
            await self._recompute_now()

    async def _recompute_now(self) -> None:
        docs, versions = self.policies.snapshot()
        # Nodes the cluster lists, and nodes whose agent watches (it may come before its
        # Node object); a node gone from both is forgotten, with what it reported.
        nodes = set(self.policies.node_names()) | set(self.watchers)
        ev, invalid = await asyncio.to_thread(compile_docs, docs)
        spans = await asyncio.to_thread(cluster_spans, ev, sorted(nodes), versions)
        # An agent that started watching during the compile holds a placeholder span: it
        # must get the difference to its real one like everyone else.
        late = sorted(set(self.watchers) - set(spans))
        if late:
            spans.update(cluster_spans(ev, late, versions))
        for node, new in spans.items():
            old = self.spans.get(node)
            if old is None:
                continue
            update = diff(old, new)
            if update is not None:
                self._send(node, {"type": "UPDATE", **update})
        self.spans = spans
        self.evaluator = ev
        for gone in set(self.realized) - set(spans):
            del self.realized[gone]
        self.versions = versions
        self.invalid = invalid
        self.synced.set()
        self._status_dirty.set()

    def _send(self, node: str, msg: dict[str, Any]) -> None:
        for q in list(self.watchers.get(node, ())):
            if q.qsize() < MAX_PENDING:
                q.put_nowait(msg)
                continue
            # The stream ends (even when the agent stopped reading and the handler is stuck
            # in a write); the agent reconnects and starts over from a snapshot.
            log.warning("node %s is %d updates behind: cutting its stream", node, MAX_PENDING)
            self.watchers[node].discard(q)
            handler = self._handlers.pop(q, None)
            if handler is not None:
                handler.cancel()

    # --- HTTP ---------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/v1/span/watch", self._watch)
        app.router.add_post("/v1/span/realized", self._realized)
        app.router.add_post("/v1/evaluate", self._evaluate)
        return app

    def _identity(self, request: web.Request) -> str:
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        who = node_of(self.secret, token) if scheme.lower() == "bearer" else None
        if who is None:
            raise web.HTTPUnauthorized(text="a node token is required\n")
        return who

    def _node(self, request: web.Request) -> str:
        node = self._identity(request)
        if node == ADMIN:
            raise web.HTTPForbidden(text="the admin token is not a node's\n")
        return node

    async def _evaluate(self, request: web.Request) -> web.Response:
        if self._identity(request) != ADMIN:
            raise web.HTTPForbidden(text="evaluation needs the admin token\n")
        await self.synced.wait()
        ev = self.evaluator
        assert ev is not None
        try:
            body = await request.json()
            src, dst, port = (str(body[k]) for k in ("from", "to", "port"))
        except (ValueError, KeyError, TypeError) as e:
            raise web.HTTPBadRequest(
                text=f'body: want {{"from": ..., "to": ..., "port": "80/TCP"}}: {e!r}\n'
            ) from e
        try:
            query = PortQuery.parse(port, "port")
            s, d = ev.cluster.endpoint(src), ev.cluster.endpoint(dst)
            if s.pod is None and d.pod is None:
                raise ValidationError(None, "", "from or to must be a pod (or a pod's IP)")
        except ValidationError as e:
            return web.json_response({"error": str(e)}, status=400)
        decision = ev.decide(s, d, query.protocol, query.port)
        names = ev.cluster.describe(s), ev.cluster.describe(d)
        if request.query.get("format") == "text":
            return web.Response(text=decision_text(decision, *names, str(query)) + "\n")
        return web.json_response(decision_json(decision, *names, str(query)))

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok\n" if self.synced.is_set() else "starting\n")

    async def _watch(self, request: web.Request) -> web.StreamResponse:
        node = self._node(request)
        await self.synced.wait()
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        span = self.spans.get(node)
        if span is None:  # a node the cluster does not list yet: nothing applies to it
            span = self.spans[node] = NodeSpan(versions=dict(self.versions))
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.watchers[node].add(q)  # no await since the span was read: no update missed
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers[q] = handler
        log.info("node %s watches its span (%d policies)", node, len(span.policies))
        try:
            await _write(resp, {"type": "SNAPSHOT", "span": span_json(span)})
            while True:
                try:
                    msg = await asyncio.wait_for(q.get(), PING_SECONDS)
                except TimeoutError:
                    msg = {"type": "PING"}
                await _write(resp, msg)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._handlers.pop(q, None)
            self.watchers[node].discard(q)
            if not self.watchers[node]:
                del self.watchers[node]
            log.info("node %s stopped watching", node)
        return resp

    async def _realized(self, request: web.Request) -> web.Response:
        node = self._node(request)
        try:
            body = await request.json()
            versions = {k: (str(v[0]), int(v[1])) for k, v in body["versions"].items()}
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as e:
            raise web.HTTPBadRequest(
                text=f"body: want {{'versions': {{POLICY: [uid, gen]}}}}: {e}\n"
            ) from e
        self.realized[node] = versions
        self._status_dirty.set()
        return web.json_response({"node": node, "policies": len(versions)})

    # --- status ---------------------------------------------------------------------------

    def statuses(self) -> dict[str, dict[str, Any]]:
        """Policy key -> Antrea status, for the kinds that carry one."""
        out = {}
        for key, (uid, gen) in self.versions.items():
            group, kind, _, _ = key.split("/", 3)
            if (group, kind) not in STATUS_KINDS:
                continue
            desired = [n for n, s in self.spans.items() if key in s.policies]
            current = [n for n in desired if self.realized.get(n, {}).get(key) == (uid, gen)]
            out[key] = policy_status(gen, len(desired), len(current), self.invalid.get(key))
        return out

    async def _status_loop(self) -> None:
        while True:
            await self._status_dirty.wait()
            await asyncio.sleep(0.2)
            self._status_dirty.clear()
            for key, status in self.statuses().items():
                if self._written.get(key) == status:
                    continue
                if not self.write_status:
                    self._written[key] = status
                    continue
                try:
                    await self._patch_status(key, status)
                    self._written[key] = status
                except ApiError as e:
                    if e.status.code == 404:
                        continue  # deleted meanwhile
                    log.warning("status of %s not written: %s; retrying", key, e)
                    self._retry_status()
                except Exception as e:  # an API server blip must not end status for good
                    log.warning("status of %s not written: %r; retrying", key, e)
                    self._retry_status()
            for key in list(self._written):
                if key not in self.versions:
                    del self._written[key]

    def _retry_status(self, delay: float = 2.0) -> None:
        asyncio.get_running_loop().call_later(delay, self._status_dirty.set)

    async def _patch_status(self, key: str, status: dict[str, Any]) -> None:
        group, kind, ns, name = key.split("/", 3)
        res: Any = STATUS_KINDS[(group, kind)].resource()
        kwargs = {"namespace": ns} if ns else {}
        await self.client.patch(
            res.Status, name, {"status": status}, patch_type=PatchType.MERGE, **kwargs
        )


async def _write(resp: web.StreamResponse, msg: dict[str, Any]) -> None:
    await resp.write(json.dumps(msg, separators=(",", ":")).encode() + b"\n")
