"""Make a bridge's flows equal to the desired flows, in one atomic bundle.

Flows are identified as OpenFlow identifies them: (table, priority, match). A desired flow
that is missing is added; one whose cookie or instructions differ is replaced (an ADD of an
existing flow replaces it, cookie included, which MODIFY does not do in OpenFlow 1.5);
installed flows in scope that nobody wants any more (e.g. flows of an earlier round, after a
restart) are deleted. Adds, then modifications, then deletes, all in one bundle.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from fyke.datapath.flow import Flow
from fyke.ovs import translate
from fyke.ovs.encode import FlowEncoder


class FlowChannel(Protocol):
    async def dump_flows(self, *, cookie: int = 0, cookie_mask: int = 0) -> list[Any]: ...

    async def bundle(self, messages: Iterable[Any], timeout: float = 30.0) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconcileResult:
    added: int
    modified: int
    deleted: int
    unchanged: int

    @property
    def changed(self) -> bool:
        return bool(self.added or self.modified or self.deleted)


async def reconcile(
    conn: FlowChannel, desired: Iterable[Flow], cookie_mask: int = 0, cookie: int = 0
) -> ReconcileResult:
    """Reconcile the installed flows whose `cookie & cookie_mask` equals
    `cookie & cookie_mask` (mask 0: every flow of the bridge) with `desired`.

    Every desired flow must fall in that scope, or the next run would not see it.
    """
    scope = cookie & cookie_mask
    flows = list(desired)
    for flow in flows:
        if flow.cookie & cookie_mask != scope:
            raise ValueError(
                f"flow cookie {flow.cookie:#x} outside scope {scope:#x}/{cookie_mask:#x}"
            )
    installed = await conn.dump_flows(cookie=scope, cookie_mask=cookie_mask)
    have: dict[translate.FlowKey, Any] = {translate.installed_key(d): d for d in installed}
    want: dict[Any, Flow] = {}
    for flow in flows:
        # Matched against what OVS reports, a flow needs the key OVS would give it (its
        # match as decoded); with nothing installed, its own key does.
        key: Any = translate.desired_key(flow) if have else flow.key
        if key in want:
            raise ValueError(f"two desired flows with one (table, priority, match): {flow}")
        want[key] = flow

    adds: list[Flow] = []
    modifies: list[Flow] = []
    deletes: list[Any] = []
    unchanged = 0
    for key, flow in want.items():
        old = have.get(key)
        if old is None:
            adds.append(flow)
        elif old.cookie != flow.cookie or translate.instructions_bytes(
            old.instructions
        ) != translate.desired_instructions(flow):
            modifies.append(flow)
        else:
            unchanged += 1
    for key, old in have.items():
        if key not in want:
            deletes.append(
                translate.delete_strict(old.table_id, old.priority, old.match, old.cookie)
            )

    if adds or modifies or deletes:
        # Encoded as they are sent: the switch checks the first while the rest are made.
        await conn.bundle(_stream([*adds, *modifies], deletes))
    return ReconcileResult(
        added=len(adds), modified=len(modifies), deleted=len(deletes), unchanged=unchanged
    )


def _stream(flows: list[Flow], deletes: list[Any]) -> Iterable[Any]:
    """FlowMods (ADD: it replaces an existing flow too) of `flows`, then `deletes`."""
    enc = FlowEncoder()
    for flow in flows:
        yield enc.flow_mod(flow)
    yield from deletes


class FlowSync:
    """Keeps one bridge's flows equal to a desired set, cheaply after the first time.

    The first sync (and any after `reset()`) reconciles against what OVS reports, which
    removes whatever a previous agent left. After that the installed flows are the ones
    this object installed, so a change is a diff of two desired sets: no flow dump, no
    decoding, one bundle with just the changes.

    Between two desired sets flows are told apart by their own (table, priority, match):
    the builders write each match one way, so no OpenFlow encoding is needed to compare.
    """

    def __init__(self, conn: FlowChannel) -> None:
        self.conn = conn
        self._known: dict[tuple[int, int, Any], Flow] | None = None

    def reset(self) -> None:
        self._known = None

    async def sync(self, desired: Iterable[Flow]) -> ReconcileResult:
        flows = list(desired)
        want: dict[tuple[int, int, Any], Flow] = {}
        for flow in flows:
            if flow.key in want:
                raise ValueError(f"two desired flows with one (table, priority, match): {flow}")
            want[flow.key] = flow
        if self._known is None:
            result = await reconcile(self.conn, flows)
            self._known = want
            return result
        known = self._known
        adds = [f for k, f in want.items() if known.get(k) != f]
        deletes = [
            translate.delete_strict(f.table.id, f.priority, translate.to_match(f), f.cookie)
            for k, f in known.items()
            if k not in want
        ]
        modified = sum(1 for k in want if k in known and known[k] != want[k])
        if adds or deletes:
            try:
                await self.conn.bundle(_stream(adds, deletes))
            except BaseException:
                self._known = None  # unsure what is installed now: next time, look
                raise
        self._known = want
        return ReconcileResult(
            added=len(adds) - modified,
            modified=modified,
            deleted=len(deletes),
            unchanged=len(want) - len(adds),
        )
