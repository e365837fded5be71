"""Flows as immutable values, a small action vocabulary, and ovs-ofctl text rendering.

Match fields use OXM names (the names os-ken's OFPMatch takes); values are ints, MAC/IPv4
strings, or `(value, mask)` pairs of ints. `render()` writes ovs-ofctl syntax, with table
names or ids, for golden tests and debugging; the OpenFlow encoding lives in fyke.ovs.
"""

from __future__ import annotations

from dataclasses import dataclass

from fyke.datapath.fields import RegField, RegMark
from fyke.datapath.tables import Table

MatchValue = int | str | tuple[int, int]
MatchPair = tuple[str, MatchValue]

ETH_TYPE_IP = 0x0800
ETH_TYPE_ARP = 0x0806
ARP_REQUEST = 1
ARP_REPLY = 2

# OXM name -> ovs-ofctl name.
MATCH_FIELDS: dict[str, str] = {
    "in_port": "in_port",
    "eth_type": "dl_type",
    "eth_src": "dl_src",
    "eth_dst": "dl_dst",
    "ipv4_src": "nw_src",
    "ipv4_dst": "nw_dst",
    "ip_proto": "nw_proto",
    "tcp_src": "tp_src",
    "tcp_dst": "tp_dst",
    "udp_src": "udp_src",
    "udp_dst": "udp_dst",
    "sctp_src": "sctp_src",
    "sctp_dst": "sctp_dst",
    "conj_id": "conj_id",
    "arp_op": "arp_op",
    "arp_spa": "arp_spa",
    "arp_tpa": "arp_tpa",
    "arp_sha": "arp_sha",
    "arp_tha": "arp_tha",
    "ct_state": "ct_state",
    "ct_mark": "ct_mark",
    "ct_zone": "ct_zone",
    "tun_ipv4_src": "tun_src",
    "tun_ipv4_dst": "tun_dst",
    **{f"reg{i}": f"reg{i}" for i in range(16)},
}

_MATCH_NAMES = frozenset(MATCH_FIELDS)

# ct_state bits (OVS CS_* values), in the order ovs-ofctl prints them.
CT_STATE_BITS: tuple[tuple[str, int], ...] = (
    ("new", 0x01),
    ("est", 0x02),
    ("rel", 0x04),
    ("rpl", 0x08),
    ("inv", 0x10),
    ("trk", 0x20),
    ("snat", 0x40),
    ("dnat", 0x80),
)


def ct_state(**flags: bool) -> MatchPair:
    """`ct_state(trk=True, new=False)` matches ct_state=-new+trk."""
    bits = dict(CT_STATE_BITS)
    value = mask = 0
    for name, on in flags.items():
        bit = bits[name]
        mask |= bit
        if on:
            value |= bit
    return ("ct_state", (value, mask))


def reg_match(mark: RegMark) -> MatchPair:
    f = mark.field
    if f.full:
        return (f.name, mark.value)
    return (f.name, (mark.shifted, f.mask))


# --- actions --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Goto:
    table: Table


@dataclass(frozen=True, slots=True, kw_only=True)
class Output:
    port: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputInPort:
    """Send back out of the port the packet came in on (OpenFlow IN_PORT)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputReg:
    field: RegField


@dataclass(frozen=True, slots=True, kw_only=True)
class Drop:
    """No actions; renders as `drop`. Must be the only action."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Ct:
    commit: bool = False
    zone: int
    table: Table | None = None
    nat: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class SetField:
    field: str
    value: int | str


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadReg:
    mark: RegMark


@dataclass(frozen=True, slots=True, kw_only=True)
class Move:
    """Copy a whole field (same width) from `src` to `dst`."""

    src: str
    dst: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Conjunction:
    """This flow is clause `clause` (1-based, as ovs-ofctl writes it) of `n_clauses` of
    conjunction `id`. A flow with conjunction actions has no other kind of action."""

    id: int
    clause: int
    n_clauses: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Controller:
    """Send the whole packet to the controller as NXT_PACKET_IN2 carrying `userdata`,
    through OpenFlow meter `meter` when set (the switch drops what exceeds its rate)."""

    userdata: bytes
    meter: int | None = None


Action = (
    Goto
    | Output
    | OutputInPort
    | OutputReg
    | Drop
    | Ct
    | SetField
    | LoadReg
    | Move
    | Conjunction
    | Controller
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Flow:
    table: Table
    priority: int
    match: tuple[MatchPair, ...]
    actions: tuple[Action, ...]
    cookie: int

    def __post_init__(self) -> None:
        names = {name for name, _ in self.match}
        if not names <= _MATCH_NAMES:
            raise ValueError(f"unknown match field {sorted(names - _MATCH_NAMES)[0]!r}")
        if len(names) != len(self.match):
            raise ValueError(f"match field repeated in {self.match}")
        if len(self.actions) < 2:
            return  # one action, or none, is always well formed
        if any(isinstance(a, Drop) for a in self.actions) and len(self.actions) != 1:
            raise ValueError("Drop must be the only action")
        conj = [isinstance(a, Conjunction) for a in self.actions]
        if any(conj) and not all(conj):
            raise ValueError("conjunction actions cannot mix with other actions")
        gotos = [i for i, a in enumerate(self.actions) if isinstance(a, Goto)]
        if gotos and gotos != [len(self.actions) - 1]:
            raise ValueError("Goto must be the last action, at most once")

    def with_match(self, match: tuple[MatchPair, ...]) -> Flow:
        """This flow with another match, unchecked: for builders that make thousands of
        flows from matches they compose from known fields (a rule's clause flows), where
        checking each would cost half of making it. The first flow of a shape is made
        (and checked) the usual way."""
        flow = _new_flow(Flow)
        _set(flow, "table", self.table)
        _set(flow, "priority", self.priority)
        _set(flow, "match", match)
        _set(flow, "actions", self.actions)
        _set(flow, "cookie", self.cookie)
        return flow

    @property
    def key(self) -> tuple[int, int, tuple[MatchPair, ...]]:
        """What identifies a flow in a switch: table, priority and match."""
        return (self.table.id, self.priority, self.match)


_new_flow = object.__new__
_set = object.__setattr__


# --- rendering ------------------------------------------------------------------------


def _table(table: Table, symbolic: bool) -> str:
    return table.name if symbolic else str(table.id)


def _value(value: MatchValue) -> str:
    if isinstance(value, tuple):
        return f"{value[0]:#x}/{value[1]:#x}"
    return value if isinstance(value, str) else str(value)


def _match_item(name: str, value: MatchValue) -> str:
    if name == "eth_type" and value == ETH_TYPE_IP:
        return "ip"
    if name == "eth_type" and value == ETH_TYPE_ARP:
        return "arp"
    if name == "eth_type" and isinstance(value, int):
        return f"dl_type={value:#06x}"
    if name == "ct_state" and isinstance(value, tuple):
        v, m = value
        return "ct_state=" + "".join(
            ("+" if v & bit else "-") + flag for flag, bit in CT_STATE_BITS if m & bit
        )
    if name == "ct_zone" and isinstance(value, int):
        return f"ct_zone={value:#x}"
    return f"{MATCH_FIELDS[name]}={_value(value)}"


def render_action(action: Action, symbolic: bool = False) -> str:
    match action:
        case Goto(table=t):
            return f"goto_table:{_table(t, symbolic)}"
        case Output(port=p):
            return f"output:{p}"
        case OutputInPort():
            return "IN_PORT"
        case OutputReg(field=f):
            bits = "" if f.full else f"{f.start}..{f.end}"
            return f"output:NXM_NX_REG{f.reg}[{bits}]"
        case Drop():
            return "drop"
        case Ct(commit=commit, zone=zone, table=t, nat=nat):
            args = ["commit"] if commit else []
            if t is not None:
                args.append(f"table={_table(t, symbolic)}")
            args.append(f"zone={zone}")
            if nat:
                args.append("nat")
            return f"ct({','.join(args)})"
        case SetField(field=f, value=v):
            shown = f"{v:#x}" if isinstance(v, int) and f.startswith("reg") else str(v)
            return f"set_field:{shown}->{MATCH_FIELDS.get(f, f) if f.startswith('tun') else f}"
        case LoadReg(mark=m):
            if m.field.full:
                return f"set_field:{m.value:#x}->{m.field.name}"
            return f"set_field:{m.shifted:#x}/{m.field.mask:#x}->{m.field.name}"
        case Move(src=s, dst=d):
            return f"move:{s}->{d}"
        case Conjunction(id=i, clause=k, n_clauses=n):
            return f"conjunction({i},{k}/{n})"
        case Controller(userdata=u, meter=m):
            meter = f",meter_id={m}" if m is not None else ""
            return "controller(userdata=" + ".".join(f"{b:02x}" for b in u) + meter + ")"
    raise TypeError(f"unknown action {action!r}")


def render(flow: Flow, symbolic: bool = False) -> str:
    """ovs-ofctl text; `symbolic` writes table names instead of ids (golden tests)."""
    head = (
        f"cookie={flow.cookie:#x}, table={_table(flow.table, symbolic)}, priority={flow.priority}"
    )
    match = ",".join(_match_item(n, v) for n, v in flow.match)
    actions = ",".join(render_action(a, symbolic) for a in flow.actions) or "drop"
    return f"{head}{',' + match if match else ''} actions={actions}"
