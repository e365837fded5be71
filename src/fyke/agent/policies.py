"""The agent's policy view: this node's span (datapath.span) and the flows it makes.

The span comes from one of two sources:
- ControllerSource: the fyke-controller's span stream (a snapshot, then incremental
  updates), authenticated by this node's token. If the controller goes away the span (and
  so every flow) stays as it was; on reconnect the new snapshot replaces it, and since rule
  keys are stable the flows only change where the policies did.
- LocalSource: no controller; the agent watches the cluster and cuts its own span with the
  same code the controller uses.

The span is also kept in STATE/span.json, so an agent restarted while the controller is
away starts with the policies it had.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from lightkube import AsyncClient

from fyke.datapath.flow import Flow
from fyke.datapath.policy import RuleFlowCache, policy_flows
from fyke.datapath.span import (
    NodeSpan,
    RuleIds,
    apply,
    cluster_spans,
    node_policy,
    parse_span,
    span_json,
)
from fyke.kube.policywatch import ClusterPolicies, compile_docs
from fyke.policy.model import Rule

log = logging.getLogger("fyke.agent.policies")
RETRY_MIN, RETRY_MAX = 0.5, 2.0
READ_TIMEOUT = 35.0  # the controller pings every 10 s


class PolicyView:
    """Holds the span; `changed()` (the agent's flow sync) runs after span changes,
    debounced."""

    def __init__(self, state: Path, changed: Callable[[], Awaitable[None]]) -> None:
        self.changed = changed
        self.cache = state / "span.json"
        self.span = NodeSpan()
        self.ids = RuleIds()
        self._rule_flows: RuleFlowCache = {}  # each rule's flows, rebuilt only on change
        self.realized: dict[str, list[object]] = {}  # policy -> [uid, generation] of flows
        self.synced = asyncio.Event()  # a span from the source (not the cache) is held
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def load_cache(self) -> bool:
        try:
            self.span = parse_span(json.loads(self.cache.read_text()))
        except FileNotFoundError:
            return False
        except (ValueError, KeyError, TypeError) as e:
            log.warning("ignoring the span cache %s: %s", self.cache, e)
            return False
        log.info("span from the cache: %d policies", len(self.span.policies))
        return True

    def replace(self, span: NodeSpan) -> None:
        self.span = span
        self.synced.set()
        self._dirty.set()

    def update(self, update: dict[str, Any]) -> None:
        """Apply an update whole or not at all (flows are built from the span meanwhile)."""
        span = NodeSpan(
            policies=dict(self.span.policies),
            applied_groups=dict(self.span.applied_groups),
            address_groups=dict(self.span.address_groups),
            versions=dict(self.span.versions),
        )
        apply(span, update)
        self.span = span
        self._dirty.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _loop(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(0.01)  # updates come one per controller compile: little to wait for
            self._dirty.clear()
            try:
                await self.changed()
            except Exception:
                log.exception("realizing policies failed; retrying on the next change")
            try:  # after the flows: a disk problem must not hold up enforcement
                await asyncio.to_thread(self._save, span_json(self.span))
            except OSError as e:
                log.warning("span cache %s not written: %s", self.cache, e)

    def _save(self, data: dict[str, Any]) -> None:
        tmp = self.cache.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, separators=(",", ":")))
        tmp.replace(self.cache)

    def flows(self, local: dict[tuple[str, str], int], *, round: int) -> list[Flow]:
        """Policy flows for this node's pods, `local` mapping (namespace, name) to ofport."""
        ofports = {f"{ns}/{name}": port for (ns, name), port in local.items()}
        self.realized = {k: list(v) for k, v in self.span.versions.items()}
        node = node_policy(self.span, ofports, self.ids)
        return policy_flows(node, round=round, cache=self._rule_flows)

    def rule(self, rule_id: int) -> Rule | None:
        """The rule behind a rule id found in a flow's cookie or packet-in."""
        return self.ids.rule(rule_id)


class LocalSource:
    """The span cut here from the cluster as this agent's own reflectors see it."""

    def __init__(self, client: AsyncClient, node: str, view: PolicyView) -> None:
        self.node = node
        self.view = view
        self.policies = ClusterPolicies(client, self._recompute)
        self._compiling = asyncio.Lock()

    async def start(self) -> None:
        await self.policies.start()
        await self._recompute()

    async def _recompute(self) -> None:
        async with self._compiling:  # one at a time: an older one must not land last
            docs, versions = self.policies.snapshot()
            ev, _ = await asyncio.to_thread(compile_docs, docs)
            spans = await asyncio.to_thread(cluster_spans, ev, [self.node], versions)
            self.view.replace(spans[self.node])

    async def stop(self) -> None:
        await self.policies.stop()

    def report(self, realized: dict[str, list[object]]) -> None:
        pass  # nobody to tell: realized.json is all


class Refused(Exception):
    """The controller refused this node's credentials."""


class ControllerSource:
    """The span as the controller streams it; reports back what the flows realize."""

    def __init__(self, url: str, token: str, ca: str, view: PolicyView) -> None:
        self.url = url.rstrip("/")
        self.view = view
        self.headers = {"Authorization": f"Bearer {token}"}
        self.tls = ssl.create_default_context(cafile=ca)
        self.connected = False
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._report: dict[str, list[object]] | None = None
        self._reported: dict[str, list[object]] | None = None
        self._report_due = asyncio.Event()

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(headers=self.headers)
        self._tasks = [
            asyncio.create_task(self._watch_forever()),
            asyncio.create_task(self._report_loop()),
        ]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        if self._session is not None:
            await self._session.close()

    async def _watch_forever(self) -> None:
        delay = RETRY_MIN
        while True:
            try:
                await self._watch()
                delay = RETRY_MIN
            except asyncio.CancelledError:
                raise
            except (Refused, aiohttp.ClientSSLError) as e:  # wrong token or CA: say it loudly
                log.error("controller stream: %s; keeping the span; retrying", e)
            except Exception as e:
                # Said once per outage: the flows stay as they are meanwhile.
                level = logging.WARNING if self.connected else logging.DEBUG
                log.log(level, "controller stream: %r; keeping the span; retrying", e)
            self.connected = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    async def _watch(self) -> None:
        assert self._session is not None
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=READ_TIMEOUT)
        async with self._session.get(
            f"{self.url}/v1/span/watch", ssl=self.tls, timeout=timeout
        ) as resp:
            if resp.status in (401, 403):
                raise Refused(f"HTTP {resp.status}: {(await resp.text()).strip()}")
            if resp.status != 200:
                raise ValueError(f"HTTP {resp.status}: {(await resp.text()).strip()}")
            buf = bytearray()  # one message per line; a snapshot is one (long) line
            async for chunk in resp.content.iter_any():
                start = len(buf)
                buf += chunk
                end = buf.find(b"\n", start)
                while end >= 0:
                    if end:
                        self._handle(json.loads(buf[:end]))
                    del buf[: end + 1]
                    end = buf.find(b"\n")

    def _handle(self, msg: dict[str, Any]) -> None:
        match msg.get("type"):
            case "SNAPSHOT":
                self.view.replace(parse_span(msg["span"]))
                if not self.connected:
                    log.info(
                        "controller stream: snapshot of %d policies", len(self.view.span.policies)
                    )
                self.connected = True
                # A restarted controller knows nothing of what this node realized.
                self._reported = None
                if self._report is not None:
                    self._report_due.set()
            case "UPDATE":
                try:
                    self.view.update(msg)
                except KeyError as e:  # an update that does not fit: start over
                    raise ValueError(f"span update out of step ({e}); resyncing") from e
            case "PING":
                pass
            case other:
                log.warning("controller stream: unknown message type %r", other)

    def report(self, realized: dict[str, list[object]]) -> None:
        """Tell the controller which policy versions the installed flows realize."""
        self._report = realized
        self._report_due.set()

    async def _report_loop(self) -> None:
        while True:
            await self._report_due.wait()
            self._report_due.clear()
            body = self._report
            if body is None or body == self._reported or not self.connected:
                continue
            assert self._session is not None
            try:
                async with self._session.post(
                    f"{self.url}/v1/span/realized",
                    json={"versions": body},
                    ssl=self.tls,
                    timeout=aiohttp.ClientTimeout(total=10),
                ) as resp:
                    if resp.status != 200:
                        raise ValueError(f"HTTP {resp.status}")
                self._reported = body
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as e:
                log.warning("reporting realized policies: %r; retrying", e)
                await asyncio.sleep(1.0)
                self._report_due.set()
