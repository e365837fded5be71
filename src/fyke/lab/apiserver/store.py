"""Objects persisted in SQLite, with a monotonic resourceVersion and an event log.

Every object also lives in memory, so reads and watches never touch the disk; each
mutation is one SQLite transaction that stores the object and the new resourceVersion
together, so a restart resumes from exactly what was acknowledged. The event log is in
memory only: after a restart, a watch from an older resourceVersion gets 410 Expired and
the client relists, as with a compacted etcd.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fyke.lab.apiserver.errors import expired

Key = tuple[str, str, str, str]  # group, plural, namespace, name
EVENT_LOG = 20000


@dataclass(frozen=True, slots=True)
class Event:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    group: str
    plural: str
    object: dict[str, Any]


class Watcher:
    def __init__(self, match: Callable[[Event], bool]) -> None:
        self.match = match
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()


class Store:
    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS objects (grp TEXT, plural TEXT, namespace TEXT, "
            "name TEXT, body TEXT, PRIMARY KEY (grp, plural, namespace, name))"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        # What each field manager last applied (server-side apply), per object.
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS applied (grp TEXT, plural TEXT, namespace TEXT, "
            "name TEXT, manager TEXT, body TEXT, "
            "PRIMARY KEY (grp, plural, namespace, name, manager))"
        )
        self._db.commit()
        row = self._db.execute("SELECT value FROM meta WHERE key='rv'").fetchone()
        self.rv = int(row[0]) if row else 1
        self._objects: dict[Key, dict[str, Any]] = {}
        for grp, plural, ns, name, body in self._db.execute("SELECT * FROM objects"):
            self._objects[(grp, plural, ns, name)] = json.loads(body)
        self._log: deque[Event] = deque(maxlen=EVENT_LOG)
        self._oldest = self.rv  # a watch may resume from here, not before
        self._watchers: set[Watcher] = set()

    def close(self) -> None:
        for w in self._watchers:
            w.queue.put_nowait(None)
        self._db.close()

    # --- reads ---------------------------------------------------------------------------

    def get(self, group: str, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self._objects.get((group, plural, namespace, name))

    def items(self, group: str, plural: str, namespace: str | None) -> list[dict[str, Any]]:
        return [
            obj
            for (g, p, ns, _), obj in sorted(self._objects.items())
            if g == group and p == plural and (namespace is None or ns == namespace)
        ]

    def in_namespace(self, namespace: str) -> list[tuple[str, str, str]]:
        return [(g, p, n) for (g, p, ns, n) in self._objects if ns == namespace]

    # --- writes --------------------------------------------------------------------------

    def next_rv(self) -> int:
        return self.rv + 1

    def applied(
        self, group: str, plural: str, namespace: str, name: str, manager: str
    ) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT body FROM applied WHERE grp=? AND plural=? AND namespace=? AND name=? "
            "AND manager=?",
            (group, plural, namespace, name, manager),
        ).fetchone()
        return json.loads(row[0]) if row else None

    def put(
        self,
        group: str,
        plural: str,
        obj: dict[str, Any],
        event: str,
        applied: tuple[str, dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Store obj (its metadata.resourceVersion already set to next_rv()), and what
        `applied` = (manager, configuration) applied, in one transaction."""
        meta = obj["metadata"]
        rv = int(meta["resourceVersion"])
        key = (group, plural, meta.get("namespace", ""), meta["name"])
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?, ?)", (*key, json.dumps(obj))
            )
            if applied is not None:
                self._db.execute(
                    "INSERT OR REPLACE INTO applied VALUES (?, ?, ?, ?, ?, ?)",
                    (*key, applied[0], json.dumps(applied[1])),
                )
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('rv', ?)", (str(rv),))
        self._objects[key] = obj
        self._emit(Event(rv, event, group, plural, obj))
        return obj

    def remove(self, group: str, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        rv = self.next_rv()
        key = (group, plural, meta.get("namespace", ""), meta["name"])
        gone = {**obj, "metadata": {**meta, "resourceVersion": str(rv)}}
        with self._db:
            self._db.execute(
                "DELETE FROM objects WHERE grp=? AND plural=? AND namespace=? AND name=?", key
            )
            self._db.execute(
                "DELETE FROM applied WHERE grp=? AND plural=? AND namespace=? AND name=?", key
            )
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('rv', ?)", (str(rv),))
        self._objects.pop(key, None)
        self._emit(Event(rv, "DELETED", group, plural, gone))
        return gone

    def _emit(self, ev: Event) -> None:
        self.rv = ev.rv
        self._log.append(ev)
        for w in self._watchers:
            if w.match(ev):
                w.queue.put_nowait(ev)

    # --- watches -------------------------------------------------------------------------

    def watch(self, since: int, match: Callable[[Event], bool]) -> tuple[Watcher, list[Event]]:
        """Events after resourceVersion `since` that match, and a watcher for what follows."""
        floor = self._oldest if len(self._log) < EVENT_LOG else self._log[0].rv - 1
        if since < floor:
            raise expired(f"too old resource version: {since} ({floor})")
        backlog = [e for e in self._log if e.rv > since and match(e)]
        w = Watcher(match)
        self._watchers.add(w)
        return w, backlog

    def unwatch(self, w: Watcher) -> None:
        self._watchers.discard(w)
