"""Flow values -> OFPT_FLOW_MOD bytes, fast, through os-ken's own serializers.

`translate.flow_mod(flow)` builds an os-ken OFPFlowMod per flow: an OFPMatch that runs every
value through os-ken's user-to-wire conversion, action objects, and a serialization of all
of it. A node's first sync does that for every flow it has (120k at 10k rules), and it
costs ~100 us a flow. A node's flows, though, are made of few distinct parts: the same
match fields with the same values (a pod's port, a peer's address) and the same action lists
recur across thousands of flows. `FlowEncoder` serializes each distinct part once, with
os-ken (one OXM TLV per (field, value), one instruction block per action tuple), and lays
out each message with os-ken's pack formats, in the field order os-ken's OFPMatch uses. The
bytes are the ones os-ken writes (tests/datapath/test_encode.py compares them flow by flow).
"""

from __future__ import annotations

import struct
from typing import Any

from os_ken.ofproto import ofproto_v1_5 as ofp  # type: ignore[import-untyped]
from os_ken.ofproto import ofproto_v1_5_parser as parser

from fyke.datapath.flow import Action, Conjunction, Flow, MatchValue
from fyke.ovs import translate

# The OpenFlow header and the FlowMod's fixed part, up to its match.
_HEAD = struct.Struct(ofp.OFP_HEADER_PACK_STR + ofp._OFP_FLOW_MOD_PACK_STR0)
_MATCH_HEADER = struct.Struct("!HH")
_INSTRUCTION_ACTIONS = struct.Struct(ofp.OFP_INSTRUCTION_ACTIONS_PACK_STR)
_BUNDLE_ADD = struct.Struct(ofp.OFP_HEADER_PACK_STR + ofp._OFP_BUNDLE_ADD_MSG_0_PACK_STR)
_PADS = [b"\0" * n for n in range(8)]
_NO_COOKIE_MASK = 0  # an ADD ignores the mask; os-ken's OFPFlowMod writes 0


def _oxm_rank(name: str, value: Any) -> Any:
    """The key os-ken's OFPMatch sorts fields by (OXM type; an experimenter's class)."""
    n, _, _ = ofp.oxm_from_user(*ofp.oxm_normalize_user(name, value))
    return n[0] if isinstance(n, tuple) else n


class FlowEncoder:
    """Encodes flows to FlowMod bytes (xid 0; `bundle_add()` sets it). Its caches grow
    with what it has encoded and live as long as it does: one per sync."""

    def __init__(self) -> None:
        self._tlvs: dict[tuple[str, MatchValue], tuple[Any, bytes]] = {}
        self._instructions: dict[tuple[Action, ...], bytes] = {}
        self._ranks: dict[str, Any] = {}
        # Whole matches recur too: a peer's address or a pod's port in every rule naming it.
        self._matches: dict[tuple[tuple[str, MatchValue], ...], bytes] = {}
        self._by_id: dict[int, tuple[tuple[Action, ...], bytes]] = {}
        # Per field with int values: the OXM header os-ken writes and the value's width,
        # so a new value (a rule's conj_id, a pod's port) needs no os-ken round; None when
        # the field's bytes are not header + value (then os-ken encodes every value).
        self._int_heads: dict[str, tuple[bytes, int] | None] = {}
        # Per (clause, n_clauses): os-ken's conjunction action for id 0 and where the id
        # goes, or None (then os-ken encodes each).
        self._conj: dict[tuple[int, int], tuple[bytes, int] | None] = {}

    def _tlv(self, item: tuple[str, MatchValue]) -> tuple[Any, bytes]:
        got = self._tlvs.get(item)
        if got is None:
            name, value = item
            rank = self._ranks.get(name)
            if rank is None:
                rank = self._ranks[name] = _oxm_rank(name, translate.oxm_value(name, value))
            head = self._int_heads.get(name) if isinstance(value, int) else None
            if head is not None and isinstance(value, int) and 0 <= value < 1 << (8 * head[1]):
                buf = head[0] + value.to_bytes(head[1], "big")
            else:
                buf = _oxm_bytes(name, value)
                if isinstance(value, int) and name not in self._int_heads:
                    self._int_heads[name] = _int_head(name, value, buf)
            got = self._tlvs[item] = (rank, buf)
        return got

    def match(self, match: tuple[tuple[str, MatchValue], ...]) -> bytes:
        """The ofp_match structure, padded to 8 bytes, as OFPMatch.serialize writes it."""
        got = self._matches.get(match)
        if got is None:
            got = self._matches[match] = self._match(match)
        return got

    def _match(self, match: tuple[tuple[str, MatchValue], ...]) -> bytes:
        tlvs = [self._tlv(item) for item in match]
        # A stable sort on the OXM type, as OFPMatch does (equal keys keep their order).
        tlvs.sort(key=_first)
        body = b"".join([t for _, t in tlvs])
        length = 4 + len(body)
        return _MATCH_HEADER.pack(ofp.OFPMT_OXM, length) + body + _PADS[-length % 8]

    def instructions(self, actions: tuple[Action, ...]) -> bytes:
        # By identity first: builders hand one tuple to every flow of a clause, and hashing
        # a tuple of dataclasses is slower than encoding is meant to be.
        seen = self._by_id.get(id(actions))
        if seen is not None:
            return seen[1]
        got = self._instructions.get(actions)
        if got is None and actions and all(type(a) is Conjunction for a in actions):
            got = self._conjunctions(actions)  # type: ignore[arg-type]
        if got is None:
            probe = Flow(table=_ANY_TABLE, priority=0, match=(), actions=actions, cookie=0)
            got = self._instructions[actions] = translate.instructions_bytes(
                translate.to_instructions(probe)
            )
        self._by_id[id(actions)] = (actions, got)  # holds `actions`, so the id stays its
        return got

    def _conjunctions(self, actions: tuple[Conjunction, ...]) -> bytes | None:
        """One apply-actions instruction of conjunction actions, from per-shape templates
        (a node has a few shapes and a conjunction id per rule)."""
        parts = []
        for a in actions:
            shape = (a.clause, a.n_clauses)
            if shape not in self._conj:
                self._conj[shape] = _conj_template(a)
            tmpl = self._conj[shape]
            if tmpl is None:
                return None
            raw, at = tmpl
            parts.append(raw[:at] + a.id.to_bytes(4, "big") + raw[at + 4 :])
        body = b"".join(parts)
        return _INSTRUCTION_ACTIONS.pack(ofp.OFPIT_APPLY_ACTIONS, 8 + len(body)) + body

    def flow_mod(self, flow: Flow, command: int = ofp.OFPFC_ADD) -> bytes:
        """The FlowMod `translate.flow_mod(flow, command)` serializes, with xid 0."""
        match = self.match(flow.match)
        instructions = self.instructions(flow.actions)
        head = _HEAD.pack(
            ofp.OFP_VERSION,
            ofp.OFPT_FLOW_MOD,
            _HEAD.size + len(match) + len(instructions),
            0,
            flow.cookie,
            _NO_COOKIE_MASK,
            flow.table.id,
            command,
            0,
            0,
            flow.priority,
            ofp.OFP_NO_BUFFER,
            ofp.OFPP_ANY,
            ofp.OFPG_ANY,
            0,
            0,
        )
        return b"".join((head, match, instructions))


def _oxm_bytes(name: str, value: MatchValue) -> bytes:
    buf = bytearray()
    n, v, m = ofp.oxm_from_user(*ofp.oxm_normalize_user(name, translate.oxm_value(name, value)))
    ofp.oxm_serialize(n, v, m, buf, 0)
    return bytes(buf)


def _int_head(name: str, value: int, encoded: bytes) -> tuple[bytes, int] | None:
    """(header, width) if os-ken writes `name`'s int values as header + big-endian value
    of `width` bytes: found from `encoded` (os-ken's bytes for `value`), checked on values
    that flip the lowest and the highest bit of that width."""
    for width in (8, 4, 2, 1):
        if width >= len(encoded) or value >= 1 << (8 * width):
            continue
        head = encoded[:-width]
        probes = (value ^ 1, value ^ (1 << (8 * width - 1)))
        if all(_oxm_bytes(name, v) == head + v.to_bytes(width, "big") for v in probes):
            return head, width
    return None


def _conj_template(a: Conjunction) -> tuple[bytes, int] | None:
    """os-ken's conjunction action for (clause, n_clauses) with id 0, and the offset of
    the id in it (checked: another id changes those 4 bytes and no other)."""

    def encoded(id_: int) -> bytes:
        buf = bytearray()
        action = parser.NXActionConjunction(clause=a.clause - 1, n_clauses=a.n_clauses, id_=id_)
        action.serialize(buf, 0)
        return bytes(buf)

    zero, probe = encoded(0), encoded(0x5A3C9601)
    for at in range(len(zero) - 3):
        if zero[:at] + (0x5A3C9601).to_bytes(4, "big") + zero[at + 4 :] == probe:
            return zero, at
    return None


def _first(pair: tuple[Any, bytes]) -> Any:
    return pair[0]


def bundle_add(inner: bytes, *, bundle_id: int, flags: int, xid: int) -> bytes:
    """OFPT_BUNDLE_ADD_MESSAGE carrying `inner` (a message serialized with any xid): both
    headers get `xid`, as OpenFlow 1.4+ requires and os-ken's OFPBundleAddMsg does."""
    head = _BUNDLE_ADD.pack(
        ofp.OFP_VERSION,
        ofp.OFPT_BUNDLE_ADD_MESSAGE,
        _BUNDLE_ADD.size + len(inner),
        xid,
        bundle_id,
        flags,
    )
    return head + inner[:4] + xid.to_bytes(4, "big") + inner[8:]


# Instructions don't depend on the table the flow sits in, only on its actions; encoding
# them goes through a throwaway Flow, which needs some table.
class _AnyTable:
    id = 0
    name = "any"


_ANY_TABLE: Any = _AnyTable()
