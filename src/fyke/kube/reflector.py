"""A reflector: list, then watch from the list's resourceVersion; relist on 410 Gone or
a broken stream, and diff the cache against the new list so that changes made while the
watch was down (deletions included) still reach the handler."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError

from fyke.kube.resources import Kind

log = logging.getLogger(__name__)
Obj = dict[str, Any]
Key = tuple[str, str]  # namespace, name


@dataclass(frozen=True, slots=True)
class Change:
    type: str  # ADDED, MODIFIED, DELETED
    object: Obj
    old: Obj | None = None


Handler = Callable[[Change], Awaitable[None] | None]


def _key(obj: Obj) -> Key:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta["name"]


class Reflector:
    def __init__(
        self,
        client: AsyncClient,
        kind: Kind,
        handler: Handler,
        *,
        namespace: str | None = None,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
    ) -> None:
        self.client: Any = client  # lightkube overloads know no generic kinds
        self.kind = kind
        self.resource: Any = kind.resource()  # lightkube's typing knows no generic kinds
        self.handler = handler
        self.namespace = namespace
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.cache: dict[Key, Obj] = {}
        self.synced = asyncio.Event()
        self.relists = 0

    def _scope(self) -> str | None:
        """lightkube's namespace argument: "*" lists every namespace of a namespaced
        kind; a cluster-scoped kind takes none."""
        if not self.kind.namespaced:
            return None
        return self.namespace or "*"

    async def _emit(self, change: Change) -> None:
        result = self.handler(change)
        if result is not None:
            await result

    async def _relist(self) -> str:
        """List, and turn the difference to the cache into changes."""
        listing = self.client.list(self.resource, namespace=self._scope())
        fresh: dict[Key, Obj] = {}
        async for item in listing:
            obj: Obj = item.to_dict()
            fresh[_key(obj)] = obj
        rv = listing.resourceVersion
        old = self.cache
        self.cache = fresh
        for key, obj in old.items():
            if key not in fresh:
                await self._emit(Change("DELETED", obj))
        for key, obj in fresh.items():
            before = old.get(key)
            if before is None:
                await self._emit(Change("ADDED", obj))
            elif _rv(before) != _rv(obj):
                await self._emit(Change("MODIFIED", obj, before))
        self.relists += 1
        self.synced.set()
        return str(rv)

    async def _watch(self, rv: str) -> None:
        async for kind, item in self.client.watch(
            self.resource, namespace=self._scope(), resource_version=rv
        ):
            if kind in ("BOOKMARK", "ERROR"):
                continue
            obj = item.to_dict()
            key = _key(obj)
            before = self.cache.get(key)
            if kind == "DELETED":
                self.cache.pop(key, None)
                await self._emit(Change("DELETED", obj))
            else:
                self.cache[key] = obj
                await self._emit(Change("ADDED" if before is None else "MODIFIED", obj, before))

    async def run(self) -> None:
        """Until cancelled."""
        delay = self.backoff
        while True:
            try:
                rv = await self._relist()
                delay = self.backoff
                await self._watch(rv)
            except asyncio.CancelledError:
                raise
            except (ApiError, httpx.HTTPError, KeyError, ValueError) as e:
                if _status(e) == 404 and not self.synced.is_set():
                    # The server does not serve this kind (a CRD not installed): nothing
                    # of it exists. Keep asking, in case it is installed later.
                    log.info("%s: not served by the API server; none exist", self.kind.kind)
                    self.synced.set()
                gone = _status(e) == 410
                log.info(
                    "%s reflector: %s; relisting%s",
                    self.kind.kind,
                    "resourceVersion expired" if gone else repr(e),
                    "" if gone else f" in {delay:.1f}s",
                )
                if not gone:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.max_backoff)


def _rv(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))


def _status(e: Exception) -> int | None:
    if isinstance(e, ApiError):
        return int(e.status.code or 0)
    if isinstance(e, httpx.HTTPStatusError):
        return e.response.status_code
    return None
