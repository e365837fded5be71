"""Flow values -> os-ken OpenFlow 1.5 messages, and the canonical forms the reconciler diffs.

Installed flows come back from the switch as decoded os-ken objects; desired flows are
encoded and decoded once, so both sides are compared in the same (decoded, re-encoded) form.
"""

from __future__ import annotations

import struct
from typing import Any

from os_ken.ofproto import ofproto_v1_5 as ofp  # type: ignore[import-untyped]
from os_ken.ofproto import ofproto_v1_5_parser as parser

from fyke.datapath.flow import (
    Action,
    Conjunction,
    Controller,
    Ct,
    Drop,
    Flow,
    Goto,
    LoadReg,
    MatchValue,
    Move,
    Output,
    OutputInPort,
    OutputReg,
    SetField,
)


def _parse_copy_field(cls: Any, buf: bytes, offset: int) -> Any:
    """os-ken 4.2.2's OFPActionCopyField.parser reads past the action (it slices
    `len_` bytes after the fixed header, so it takes the padding and the next actions
    as oxm ids and fails, and it reports the wrong length). This parses exactly the two oxm ids."""
    (type_, len_, n_bits, src_offset, dst_offset) = struct.unpack_from(
        ofp.OFP_ACTION_COPY_FIELD_PACK_STR, buf, offset
    )
    rest = buf[offset + ofp.OFP_ACTION_COPY_FIELD_SIZE : offset + len_]
    src, rest = parser.OFPOxmId.parse(rest)
    dst, _ = parser.OFPOxmId.parse(rest)
    action = cls(n_bits, src_offset, dst_offset, [src, dst], type_, len_)
    action.len = len_  # __init__ drops it; the instruction parser advances by it
    return action


parser.OFPActionCopyField.parser = classmethod(_parse_copy_field)

# Widths (bits) of fields that Move copies.
FIELD_BITS: dict[str, int] = {
    "eth_src": 48,
    "eth_dst": 48,
    "arp_sha": 48,
    "arp_tha": 48,
    "arp_spa": 32,
    "arp_tpa": 32,
    "ipv4_src": 32,
    "ipv4_dst": 32,
    **{f"reg{i}": 32 for i in range(16)},
}

_PREFIX_FIELDS = {"ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa"}

MatchKey = tuple[tuple[str, Any], ...]
FlowKey = tuple[int, int, MatchKey]


class Datapath:
    """The little os-ken's message classes need from a 'datapath'."""

    ofproto = ofp
    ofproto_parser = parser
    id: int | None = None


DP = Datapath()


def _prefix_len_to_mask(n: int) -> str:
    m = (0xFFFFFFFF << (32 - n)) & 0xFFFFFFFF
    return ".".join(str((m >> s) & 0xFF) for s in (24, 16, 8, 0))


def oxm_value(name: str, value: MatchValue) -> Any:
    """A match value as os-ken's OFPMatch takes it (prefixes as address and mask)."""
    if name in _PREFIX_FIELDS and isinstance(value, str) and "/" in value:
        addr, plen = value.split("/")
        if int(plen) == 32:
            return addr
        return (addr, _prefix_len_to_mask(int(plen)))
    return value


def to_match(flow: Flow) -> Any:
    return parser.OFPMatch(**{name: oxm_value(name, v) for name, v in flow.match})


def _action(action: Action) -> Any:
    match action:
        case Output(port=p):
            return parser.OFPActionOutput(p)
        case OutputInPort():
            return parser.OFPActionOutput(ofp.OFPP_IN_PORT)
        case OutputReg(field=f):
            return parser.NXActionOutputReg(
                ofs_nbits=(f.start << 6) | (f.end - f.start), src=f.name, max_len=0
            )
        case Ct(commit=commit, zone=zone, table=t, nat=nat):
            return parser.NXActionCT(
                flags=1 if commit else 0,
                zone_src="",
                zone_ofs_nbits=zone,
                recirc_table=t.id if t is not None else 0xFF,
                alg=0,
                actions=[parser.NXActionNAT(flags=0)] if nat else [],
            )
        case SetField(field=f, value=v):
            return parser.OFPActionSetField(**{f: v})
        case LoadReg(mark=m):
            # OVS rejects NXAST_REG_LOAD2 / NXAST_REG_MOVE in OpenFlow 1.5 (it wants the
            # standard masked set_field and copy_field), and it reports registers as the
            # 64-bit OpenFlow 1.5 packet registers (xregN = reg2N << 32 | reg2N+1); writing
            # them that way keeps installed and desired actions byte-equal.
            shift = 32 if m.field.reg % 2 == 0 else 0
            xreg = f"xreg{m.field.reg // 2}"
            return parser.OFPActionSetField(**{xreg: (m.shifted << shift, m.field.mask << shift)})
        case Move(src=s, dst=d):
            return parser.OFPActionCopyField(
                n_bits=FIELD_BITS[s],
                src_offset=0,
                dst_offset=0,
                oxm_ids=[parser.OFPOxmId(s), parser.OFPOxmId(d)],
            )
        case Conjunction(id=i, clause=k, n_clauses=n):
            # The wire format numbers clauses from 0; ovs-ofctl (and Conjunction) from 1.
            return parser.NXActionConjunction(clause=k - 1, n_clauses=n, id_=i)
        case Controller(userdata=u, meter=m):
            # No max_len property: OVS leaves out the default (whole packet) when it
            # reports the flow, and installed and desired actions must stay byte-equal.
            if m is None:
                return parser.NXActionController2(userdata=u)
            return parser.NXActionController2(userdata=u, meter_id=m)
    raise TypeError(f"cannot encode action {action!r}")


NXAC2PT_METER_ID = 5  # OVS's controller() property meter_id, a u32; os-ken 4.2.2 lacks it


# os-ken builds its Nicira property classes inside a function; the controller action's
# parser closes over the registry, which is where a new property type goes.
def _controller_props() -> Any:
    fn = parser.NXActionController2.parser.__func__
    cells = dict(zip(fn.__code__.co_freevars, fn.__closure__ or (), strict=True))
    return cells["NXActionController2Prop"].cell_contents


_Prop = _controller_props()


if "meter_id" not in _Prop._NAMES:

    @_Prop.register_type(NXAC2PT_METER_ID)
    class _ControllerMeterId(_Prop):  # type: ignore[misc,valid-type]
        _arg_name = "meter_id"

        @classmethod
        def parser_prop(cls, buf: bytes, length: int) -> tuple[int, int]:
            return int(struct.unpack_from("!I", buf, 0)[0]), 4

        @classmethod
        def serialize_prop(cls, meter_id: int) -> bytearray:
            return bytearray(struct.pack("!HHI", NXAC2PT_METER_ID, 8, meter_id))


def meter_mod(meter_id: int, *, pktps: int, burst: int, command: int = ofp.OFPMC_ADD) -> Any:
    """A meter that drops packets above `pktps` per second (bursts of `burst`)."""
    return parser.OFPMeterMod(
        DP,
        command=command,
        flags=ofp.OFPMF_PKTPS | ofp.OFPMF_BURST,
        meter_id=meter_id,
        bands=[parser.OFPMeterBandDrop(rate=pktps, burst_size=burst)],
    )


def to_instructions(flow: Flow) -> list[Any]:
    apply = [_action(a) for a in flow.actions if not isinstance(a, Goto | Drop)]
    out: list[Any] = []
    if apply:
        out.append(parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, apply))
    for a in flow.actions:
        if isinstance(a, Goto):
            out.append(parser.OFPInstructionGotoTable(a.table.id))
    return out


def flow_mod(flow: Flow, command: int = ofp.OFPFC_ADD) -> Any:
    return parser.OFPFlowMod(
        DP,
        cookie=flow.cookie,
        table_id=flow.table.id,
        command=command,
        priority=flow.priority,
        buffer_id=ofp.OFP_NO_BUFFER,
        out_port=ofp.OFPP_ANY,
        out_group=ofp.OFPG_ANY,
        match=to_match(flow),
        instructions=to_instructions(flow),
    )


def delete_strict(table_id: int, priority: int, match: Any, cookie: int) -> Any:
    """Delete exactly one installed flow, and only if it still has `cookie`."""
    return parser.OFPFlowMod(
        DP,
        cookie=cookie,
        cookie_mask=0xFFFFFFFFFFFFFFFF,
        table_id=table_id,
        command=ofp.OFPFC_DELETE_STRICT,
        priority=priority,
        buffer_id=ofp.OFP_NO_BUFFER,
        out_port=ofp.OFPP_ANY,
        out_group=ofp.OFPG_ANY,
        match=match,
        instructions=[],
    )


# --- canonical forms ------------------------------------------------------------------


def match_key(match: Any) -> MatchKey:
    """Order-independent form of a decoded OFPMatch.

    OVS answers in OpenFlow 1.5 with 64-bit xregN (= reg2N << 32 | reg2N+1) for register
    matches, so registers are split back into 32-bit regN with full masks dropped.
    """
    items: list[tuple[str, Any]] = []
    for k, v in match._fields2:
        if k.startswith("xreg"):
            n = int(k[4:])
            value, mask = v if isinstance(v, tuple | list) else (v, (1 << 64) - 1)
            for reg, shift in ((2 * n, 32), (2 * n + 1, 0)):
                m = (mask >> shift) & 0xFFFFFFFF
                if m:
                    items.append(_reg_item(reg, (value >> shift) & m, m))
        elif k.startswith("reg") and isinstance(v, tuple | list):
            items.append(_reg_item(int(k[3:]), v[0], v[1]))
        else:
            items.append((k, _hashable(v)))
    return tuple(sorted(items))


def _reg_item(reg: int, value: int, mask: int) -> tuple[str, Any]:
    return (f"reg{reg}", value if mask == 0xFFFFFFFF else (value, mask))


def _hashable(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def _roundtrip_match(match: Any) -> Any:
    buf = bytearray()
    match.serialize(buf, 0)
    return parser.OFPMatch.parser(bytes(buf), 0)


def instructions_bytes(instructions: list[Any]) -> bytes:
    buf = bytearray()
    for inst in instructions:
        inst.serialize(buf, len(buf))
    return bytes(buf)


def desired_key(flow: Flow) -> FlowKey:
    return (flow.table.id, flow.priority, match_key(_roundtrip_match(to_match(flow))))


def installed_key(desc: Any) -> FlowKey:
    return (desc.table_id, desc.priority, match_key(desc.match))


def desired_instructions(flow: Flow) -> bytes:
    return _roundtrip_instructions(to_instructions(flow))


def _roundtrip_instructions(instructions: list[Any]) -> bytes:
    raw = instructions_bytes(instructions)
    decoded = []
    offset = 0
    while offset < len(raw):
        inst = parser.OFPInstruction.parser(raw, offset)
        decoded.append(inst)
        offset += inst.len
    return instructions_bytes(decoded)
