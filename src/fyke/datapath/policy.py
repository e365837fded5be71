"""Feature: network policy rules of one node as OpenFlow conjunctions.

Egress rules run at the source pod (matched by in_port) before L3Forwarding, ingress rules
at the destination pod (matched by reg1, the target ofport L2ForwardingCalc found). Each
realized rule is one conjunction: clause 1 the protected ports, clause 2 the peer addresses
(nw_dst for egress, nw_src for ingress), clause 3 the services (ip_proto + tp_dst value/mask
pairs); an "any" clause is left out, so a rule costs n+m+k+1 flows. The conj_id flow holds
the action.

Tables per direction (egress shown; ingress is TierPolicyIngress/IngressRule/IngressDefault):

    TierPolicyEgress  Layer.ADMIN rules (Antrea tiers, CNP Admin, ANP)
                      allow -> L3Forwarding, pass -> EgressRule
    EgressRule        Layer.NETWORK_POLICY allow rules            (band RULE_TOP)
                      isolated ports drop                         (ISOLATION_PRIORITY)
                      Layer.ANTREA_BASELINE rules, pass -> EgressDefault (band BASELINE_TOP)
    EgressDefault     Layer.BASELINE rules (BANP, CNP Baseline); miss -> allow

The Antrea baseline tier lives below the isolation drop in EgressRule, not in EgressDefault:
its Pass must skip the remaining Antrea-baseline rules and continue with the BASELINE
rules, and goto_table cannot go back into the same table. The pipeline's tables stay as
they are.

Reject is, for now, a controller(userdata) action (so the packet is not forwarded): a later
packet-in handler answers with a TCP RST / ICMP unreachable. userdata is REJECT_USERDATA
(4 bytes: USERDATA_REJECT, 3 zero bytes) followed by the 4-byte rule id.

Priorities are dense ranks of Rule.order within a band, so the first rule in evaluation
order wins whatever the raw tier and policy priorities are. Cookies carry Feature.POLICY
and the rule id; the two flows tied to no rule use reserved object ids.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from fyke.api.core import Direction, IPBlock, Protocol
from fyke.datapath import tables as t
from fyke.datapath.fields import (
    OBJECT_MASK,
    Feature,
    RegMark,
    TargetOFPortField,
    make_cookie,
)
from fyke.datapath.flow import (
    ETH_TYPE_IP,
    Action,
    Conjunction,
    Controller,
    Drop,
    Flow,
    Goto,
    MatchPair,
    ct_state,
    reg_match,
)
from fyke.policy.model import Action as Verdict
from fyke.policy.model import Layer

IP: MatchPair = ("eth_type", ETH_TYPE_IP)

RULE_TOP = 60000  # first rule of TierPolicy*, *Rule (K8s NetworkPolicy) and *Default
ISOLATION_PRIORITY = 30000  # isolated ports drop, in *Rule, below K8s NetworkPolicy allows
BASELINE_TOP = 29999  # first Antrea baseline-tier rule, in *Rule, below isolation
BAND_SIZE = 29000  # at most this many distinct rule orders per band
ESTABLISHED_PRIORITY = 65000  # established/related skip the ingress rules (above RULE_TOP)

# Cookie objects of the policy flows tied to no single rule.
PIPELINE_OBJ = OBJECT_MASK
ISOLATION_OBJ = OBJECT_MASK - 1

USERDATA_REJECT = 1
USERDATA_LOG = 2  # an enableLogging rule decided this packet (the verdict follows)
# OpenFlow meter every packet-in of the policy flows goes through (the agent creates it):
# Reject answers and audit-log copies are rate-limited in the switch, before the agent.
PACKET_IN_METER = 1
SUB_BITS = 10  # conj_id = (rule_id << SUB_BITS | sub) + 1


PROTO_NUMBERS = {Protocol.TCP: 6, Protocol.UDP: 17, Protocol.SCTP: 132}
DST_PORT_FIELD = {Protocol.TCP: "tcp_dst", Protocol.UDP: "udp_dst", Protocol.SCTP: "sctp_dst"}
SRC_PORT_FIELD = {Protocol.TCP: "tcp_src", Protocol.UDP: "udp_src", Protocol.SCTP: "sctp_src"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Service:
    """Destination ports [start..end] of one protocol; start None: every port. A source
    range [src_start..src_end] (Antrea's sourcePort) narrows it to clients on those ports."""

    protocol: Protocol
    start: int | None = None
    end: int | None = None
    src_start: int | None = None
    src_end: int | None = None

    def key(self) -> tuple[str, int, int, int, int]:
        """A total order (every port of a protocol first): ports may be None."""
        start = -1 if self.start is None else self.start
        src = -1 if self.src_start is None else self.src_start
        return (
            self.protocol.value,
            start,
            start if self.end is None else self.end,
            src,
            src if self.src_end is None else self.src_end,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RealizedRule:
    """One rule (or one named-port / namespace split of it) on one node.

    applied: ofports of the local pods it protects. peers: addresses (None: any).
    services: None: any. order: Rule.order, ranked into an OpenFlow priority.
    """

    rule_id: int
    sub: int = 0
    direction: Direction
    layer: Layer
    order: tuple[Any, ...]
    action: Verdict
    applied: frozenset[int]
    peers: tuple[IPBlock, ...] | None
    services: tuple[Service, ...] | None
    logged: bool = False

    @property
    def conj_id(self) -> int:
        # Never 0: a packet outside any conjunction has conj_id 0, so a conj_id=0 flow
        # would match every packet.
        return ((self.rule_id << SUB_BITS) | self.sub) + 1


@dataclass(frozen=True, slots=True, kw_only=True)
class NodePolicy:
    """What the policy flows of one node are built from. logged_isolation: (direction,
    ofport, rule id) of the isolated ports whose isolation drops are logged; the rule id
    names the isolation (its policies) in the audit log."""

    rules: tuple[RealizedRule, ...]
    isolated_egress: frozenset[int] = frozenset()
    isolated_ingress: frozenset[int] = frozenset()
    logged_isolation: frozenset[tuple[Direction, int, int]] = frozenset()


@dataclass(frozen=True, slots=True, kw_only=True)
class _Tables:
    tier: t.Table
    rule: t.Table
    default: t.Table
    next_stage: t.Table
    applied_field: str
    peer_field: str


EGRESS = _Tables(
    tier=t.TierPolicyEgress,
    rule=t.EgressRule,
    default=t.EgressDefault,
    next_stage=t.L3Forwarding,
    applied_field="in_port",
    peer_field="ipv4_dst",
)
INGRESS = _Tables(
    tier=t.TierPolicyIngress,
    rule=t.IngressRule,
    default=t.IngressDefault,
    next_stage=t.ConntrackCommit,
    applied_field="reg1",
    peer_field="ipv4_src",
)


def tables_of(direction: Direction) -> _Tables:
    return EGRESS if direction is Direction.EGRESS else INGRESS


def placement(rule: RealizedRule) -> tuple[t.Table, int]:
    """The table of a rule and the priority of the first rule of its band."""
    ts = tables_of(rule.direction)
    match rule.layer:
        case Layer.ADMIN:
            return ts.tier, RULE_TOP
        case Layer.NETWORK_POLICY:
            return ts.rule, RULE_TOP
        case Layer.ANTREA_BASELINE:
            return ts.rule, BASELINE_TOP
        case _:
            return ts.default, RULE_TOP


def reject_userdata(rule_id: int) -> bytes:
    return struct.pack("!BxxxI", USERDATA_REJECT, rule_id)


def log_userdata(rule_id: int) -> bytes:
    return struct.pack("!BxxxI", USERDATA_LOG, rule_id)


def rule_actions(rule: RealizedRule) -> tuple[Action, ...]:
    """The verdict's actions; a logged rule first sends a copy to the agent (a Reject is
    reported by the packet-in it already sends; a Drop is the copy alone, no output)."""
    acts = _verdict_actions(rule)
    if not rule.logged or rule.action is Verdict.REJECT:
        return acts
    log = Controller(userdata=log_userdata(rule.rule_id), meter=PACKET_IN_METER)
    return (log,) if acts == (Drop(),) else (log, *acts)


def _verdict_actions(rule: RealizedRule) -> tuple[Action, ...]:
    ts = tables_of(rule.direction)
    match rule.action:
        case Verdict.ALLOW:
            return (Goto(table=ts.next_stage),)
        case Verdict.DROP:
            return (Drop(),)
        case Verdict.REJECT:
            return (Controller(userdata=reject_userdata(rule.rule_id), meter=PACKET_IN_METER),)
        case Verdict.PASS if rule.layer is Layer.ADMIN:
            return (Goto(table=ts.rule),)
        case Verdict.PASS if rule.layer is Layer.ANTREA_BASELINE:
            return (Goto(table=ts.default),)
    return (Goto(table=ts.next_stage),)  # a Pass out of the last layer: default allow


# --- match clauses --------------------------------------------------------------------


def port_ranges(start: int, end: int) -> list[tuple[int, int]]:
    """[start..end] as the fewest (value, mask) pairs over 16 bits."""
    out: list[tuple[int, int]] = []
    while start <= end:
        size = start & -start if start else 1 << 16
        while start + size - 1 > end:
            size >>= 1
        out.append((start, 0xFFFF & ~(size - 1)))
        start += size
    return out


def service_matches(services: Iterable[Service]) -> list[tuple[MatchPair, ...]]:
    out: list[tuple[MatchPair, ...]] = []
    for s in sorted(set(services), key=Service.key):
        proto: MatchPair = ("ip_proto", PROTO_NUMBERS[s.protocol])
        dsts = _port_matches(DST_PORT_FIELD[s.protocol], s.start, s.end)
        srcs = _port_matches(SRC_PORT_FIELD[s.protocol], s.src_start, s.src_end)
        out.extend((proto, *dst, *src) for dst in dsts for src in srcs)
    return list(dict.fromkeys(out))


def _port_matches(field: str, start: int | None, end: int | None) -> list[tuple[MatchPair, ...]]:
    """[start..end] of `field` as (value, mask) matches; start None: no match on it."""
    if start is None:
        return [()]
    return [
        ((field, value if mask == 0xFFFF else (value, mask)),)
        for value, mask in port_ranges(start, end if end is not None else start)
    ]


# Per build: each distinct clause is made once (many rules share one: a namespace's pods
# as peers, a group of protected pods, a port list). Keys by identity hold their object.
BuildMemo = dict[tuple[Any, ...], tuple[Any, Any]]
T = TypeVar("T")


def _memo(memo: BuildMemo | None, key: tuple[Any, ...], make: Callable[[], T], hold: Any) -> T:
    if memo is None:
        return make()
    got = memo.get(key)
    if got is None:
        got = memo[key] = (hold, make())
    return got[1]


def _peer_clause(
    peers: tuple[IPBlock, ...], field: str, memo: BuildMemo | None
) -> tuple[tuple[MatchPair, ...], ...]:
    """The peer clause's matches. Collapsing addresses is the costly part of building a
    rule; the realizer hands rules with the same peers one tuple, so by identity."""
    return _memo(
        memo,
        ("peers", id(peers), field),
        lambda: tuple(((field, _cidr_text(a, n)),) for a, n in peer_cidrs(peers)),
        peers,
    )


def _applied_clause(
    ports: frozenset[int], field: str, memo: BuildMemo | None
) -> tuple[tuple[MatchPair, ...], ...]:
    def make() -> tuple[tuple[MatchPair, ...], ...]:
        if field == "reg1":
            return tuple(
                (reg_match(RegMark(field=TargetOFPortField, value=p)),) for p in sorted(ports)
            )
        return tuple(((field, p),) for p in sorted(ports))

    return _memo(memo, ("applied", field, ports), make, None)


def _services_clause(
    services: tuple[Service, ...], memo: BuildMemo | None
) -> list[tuple[MatchPair, ...]]:
    return _memo(memo, ("services", id(services)), lambda: service_matches(services), services)


def peer_cidrs(peers: Iterable[IPBlock]) -> list[tuple[int, int]]:
    """(address, prefix length) of the fewest IPv4 CIDRs that cover the blocks minus their
    excepts, in address order (what ipaddress.collapse_addresses would give, done on
    integer ranges: this runs for every distinct peer set of a node)."""
    ranges: list[tuple[int, int]] = []
    for block in peers:
        cidr = block.cidr
        if not isinstance(cidr, ipaddress.IPv4Network):
            continue  # IPv6 is not wired in the pipeline yet
        start = int(cidr.network_address)
        parts = [(start, start + (1 << (32 - cidr.prefixlen)) - 1)]
        for exc in block.excepts:
            if not isinstance(exc, ipaddress.IPv4Network):
                continue
            lo = int(exc.network_address)
            hi = lo + (1 << (32 - exc.prefixlen)) - 1
            nxt = []
            for a, b in parts:
                if hi < a or lo > b:
                    nxt.append((a, b))
                    continue
                if a < lo:
                    nxt.append((a, lo - 1))
                if hi < b:
                    nxt.append((hi + 1, b))
            parts = nxt
        ranges.extend(parts)
    ranges.sort()
    out: list[tuple[int, int]] = []
    i = 0
    while i < len(ranges):
        a, b = ranges[i]
        i += 1
        while i < len(ranges) and ranges[i][0] <= b + 1:
            b = max(b, ranges[i][1])
            i += 1
        while a <= b:  # the largest aligned block at a that fits, then the rest
            size = a & -a if a else 1 << 32
            while a + size - 1 > b:
                size >>= 1
            out.append((a, 33 - size.bit_length()))
            a += size
    return out


def peer_networks(peers: Iterable[IPBlock]) -> list[ipaddress.IPv4Network]:
    """IPv4 networks covering the blocks minus their excepts, without overlaps."""
    return [ipaddress.IPv4Network((a, n)) for a, n in peer_cidrs(peers)]


def _cidr_text(address: int, prefixlen: int) -> str:
    text = socket.inet_ntoa(address.to_bytes(4, "big"))
    return text if prefixlen == 32 else f"{text}/{prefixlen}"


def rule_clauses(
    rule: RealizedRule, memo: BuildMemo | None = None
) -> list[Sequence[tuple[MatchPair, ...]]]:
    """The rule's non-any clauses, in order applied, peers, services."""
    ts = tables_of(rule.direction)
    clauses: list[Sequence[tuple[MatchPair, ...]]] = [
        _applied_clause(rule.applied, ts.applied_field, memo)
    ]
    if rule.peers is not None:
        clauses.append(_peer_clause(rule.peers, ts.peer_field, memo))
    if rule.services is not None:
        clauses.append(_services_clause(rule.services, memo))
    return clauses


# --- flows ----------------------------------------------------------------------------


def priorities(rules: Sequence[RealizedRule]) -> dict[int, int]:
    """conj_id -> OpenFlow priority: dense ranks of Rule.order within each band."""
    bands: dict[tuple[int, int], set[tuple[Any, ...]]] = defaultdict(set)
    for r in rules:
        table, top = placement(r)
        bands[(table.id, top)].add(r.order)
    rank: dict[tuple[int, int, tuple[Any, ...]], int] = {}
    for (table_id, top), orders in bands.items():
        if len(orders) > BAND_SIZE:
            raise ValueError(f"{len(orders)} rule priorities in table {table_id}: too many")
        for i, order in enumerate(sorted(orders)):
            rank[(table_id, top, order)] = top - i
    out = {}
    for r in rules:
        table, top = placement(r)
        out[r.conj_id] = rank[(table.id, top, r.order)]
    return out


def rule_flows(
    rule: RealizedRule, priority: int, *, round: int, memo: BuildMemo | None = None
) -> list[Flow]:
    """The flows of one rule (unmerged: clause flows of split rules may share a match)."""
    table, _ = placement(rule)
    cookie = make_cookie(round=round, feature=Feature.POLICY, obj=rule.rule_id)
    clauses = rule_clauses(rule, memo)
    if any(not c for c in clauses):
        return []  # a clause that holds nothing: the rule matches no packet
    actions = rule_actions(rule)
    n = len(clauses)
    conj_id = rule.conj_id
    flows: list[Flow] = []
    for k, clause in enumerate(clauses, start=1):
        acts = actions if n == 1 else (Conjunction(id=conj_id, clause=k, n_clauses=n),)
        # The clause's first flow is checked; the rest differ only in matches made of the
        # same known fields (a port, an address, a protocol and port).
        first = Flow(
            table=table, priority=priority, match=(IP, *clause[0]), actions=acts, cookie=cookie
        )
        flows.append(first)
        flows.extend(first.with_match((IP, *m)) for m in clause[1:])
    if n == 1:
        return flows
    flows.append(
        Flow(
            table=table,
            priority=priority,
            match=(IP, ("conj_id", conj_id)),
            actions=actions,
            cookie=cookie,
        )
    )
    return flows


def _merge(flows: Iterable[Flow]) -> list[Flow]:
    """One flow per (table, priority, match); conjunction actions of split rules merge."""
    by_key: dict[tuple[int, int, tuple[MatchPair, ...]], Flow] = {}
    for f in flows:
        old = by_key.get(f.key)
        if old is None:
            by_key[f.key] = f
        elif all(isinstance(a, Conjunction) for a in (*old.actions, *f.actions)):
            acts = tuple(dict.fromkeys((*old.actions, *f.actions)))
            by_key[f.key] = Flow(
                table=f.table, priority=f.priority, match=f.match, actions=acts, cookie=f.cookie
            )
        elif old.actions != f.actions:
            raise ValueError(f"two policy flows with one match disagree: {old} / {f}")
    return list(by_key.values())


def isolation_flows(node: NodePolicy, *, round: int) -> list[Flow]:
    """Drop what no rule allowed from/to an isolated port; a logged isolation first sends
    the packet to the agent (and, like a logged Drop rule, only that)."""
    cookie = make_cookie(round=round, feature=Feature.POLICY, obj=ISOLATION_OBJ)
    logged = {(d, port): rule_id for d, port, rule_id in node.logged_isolation}
    out = []
    for direction, ports in (
        (Direction.EGRESS, node.isolated_egress),
        (Direction.INGRESS, node.isolated_ingress),
    ):
        ts = tables_of(direction)
        for port in sorted(ports):
            applied: MatchPair = (
                reg_match(RegMark(field=TargetOFPortField, value=port))
                if ts.applied_field == "reg1"
                else (ts.applied_field, port)
            )
            rule_id = logged.get((direction, port))
            actions: tuple[Action, ...] = (Drop(),)
            if rule_id is not None:
                log = Controller(userdata=log_userdata(rule_id), meter=PACKET_IN_METER)
                actions = (log,)
            out.append(
                Flow(
                    table=ts.rule,
                    priority=ISOLATION_PRIORITY,
                    match=(IP, applied),
                    actions=actions,
                    cookie=cookie
                    if rule_id is None
                    else make_cookie(round=round, feature=Feature.POLICY, obj=rule_id),
                )
            )
    return out


RuleFlowCache = dict[tuple[RealizedRule, int, int], list[Flow]]


def policy_flows(node: NodePolicy, *, round: int, cache: RuleFlowCache | None = None) -> list[Flow]:
    """Every policy flow of the node, sorted by table and descending priority.

    `cache` (kept by the caller between calls) holds each rule's flows by (rule, priority,
    round): a change rebuilds only the rules it touches. It is left holding only the
    rules of this call."""
    prio = priorities(node.rules)
    used: RuleFlowCache = {}
    flows: list[Flow] = [
        # Established and related connections were admitted when new (as ConntrackState
        # does for egress); this sits above every ingress rule.
        Flow(
            table=t.TierPolicyIngress,
            priority=ESTABLISHED_PRIORITY,
            match=(IP, ct_state(new=False, trk=True)),
            actions=(Goto(table=t.ConntrackCommit),),
            cookie=make_cookie(round=round, feature=Feature.POLICY, obj=PIPELINE_OBJ),
        )
    ]
    seen: set[int] = set()
    memo: BuildMemo = {}
    # Flows of one (table, priority) by the rules that made them. Only rules that share a
    # priority (the named-port / namespace splits of one rule) can make flows with one
    # match; a rule's own flows never share one (each clause matches other fields).
    bands: dict[tuple[int, int], list[list[Flow]]] = defaultdict(list)
    for r in node.rules:
        if r.conj_id in seen:
            raise ValueError(f"conj_id {r.conj_id} (rule {r.rule_id} sub {r.sub}) repeated")
        if not 0 <= r.sub < 1 << SUB_BITS:
            raise ValueError(f"rule {r.rule_id}: sub-rule {r.sub} out of range")
        seen.add(r.conj_id)
        priority = prio[r.conj_id]
        if cache is None:
            built = rule_flows(r, priority, round=round, memo=memo)
        else:
            key = (r, priority, round)
            cached = cache.get(key)
            built = rule_flows(r, priority, round=round, memo=memo) if cached is None else cached
            used[key] = built
        bands[(placement(r)[0].id, priority)].append(built)
    if cache is not None:
        cache.clear()
        cache.update(used)
    for built_by in bands.values():
        if len(built_by) == 1:
            flows.extend(built_by[0])
        else:
            flows.extend(_merge(f for built in built_by for f in built))
    flows.extend(isolation_flows(node, round=round))
    return sorted(flows, key=lambda f: (f.table.id, -f.priority))
