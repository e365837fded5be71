"""Reachability matrices over every ordered pair of distinct pods.

A connection is allowed when the source's egress side and the destination's ingress side
both allow it. Each side depends only on that side's candidate rules (the rules
protecting the pod whose peers select the other end), its isolation, and for named ports
the destination's ports. Sides are evaluated once per distinct such key and pairs combine
two cached sides, so a matrix costs about as many rule walks as there are distinct sides,
not pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from fyke.api.core import PROTOCOLS, Direction, Pod, Protocol
from fyke.api.errors import ValidationError
from fyke.policy.evaluate import Evaluator
from fyke.policy.model import PASS_TARGET, Action, Layer, PolicyInfo, Rule

T = TypeVar("T")
S = TypeVar("S")
MAX_PORT = 65535
Ranges = list[list[int]]  # [[start, end], ...] inclusive, sorted, merged


@dataclass(frozen=True, slots=True)
class PortQuery:
    protocol: Protocol
    port: int

    def __str__(self) -> str:
        return f"{self.port}/{self.protocol.value}"

    @classmethod
    def parse(cls, text: str, field: str = "--port") -> PortQuery:
        """PORT/PROTO (protocol TCP when left out); errors name `field`."""
        number, _, proto = text.partition("/")
        try:
            port = int(number)
        except ValueError:
            raise ValidationError(
                None, field, f"{text!r}: expected PORT/PROTO such as 80/TCP"
            ) from None
        if not 1 <= port <= 65535:
            raise ValidationError(None, field, f"{text!r}: port must be between 1 and 65535")
        try:
            protocol = Protocol((proto or "TCP").upper())
        except ValueError:
            raise ValidationError(
                None, field, f"{text!r}: protocol must be one of TCP, UDP, SCTP"
            ) from None
        return cls(protocol, port)


class _Side:
    """One direction's rules per pod, with their peer sets resolved for that pod."""

    def __init__(self, ev: Evaluator, direction: Direction) -> None:
        pods = ev.cluster.pods
        self.direction = direction
        self.by_id = {r.id: r for r in ev.policies.rules}
        # Per pod: (rule id, peer pods or None for every peer) of the rules protecting it.
        self.rules: list[list[tuple[int, frozenset[int] | None]]] = []
        self.isolated: list[list[PolicyInfo]] = []
        self.named: list[bool] = []
        for i, pod in enumerate(pods):
            applied = [] if pod.host_network else ev.applied(direction, i)
            self.rules.append([(r.id, ev.peer_pods(r, i)) for r in applied])
            self.isolated.append([] if pod.host_network else ev.isolated_by(direction, i))
            self.named.append(any(r.has_named_ports for r in applied))
        self.keys: dict[tuple[object, ...], int] = {}
        # Pods with the same container ports share an id (cheap to hash in keys).
        distinct: dict[tuple[object, ...], int] = {}
        self.ports_id = [distinct.setdefault(p.ports, len(distinct)) for p in pods]
        self.inputs: list[tuple[list[Rule], list[PolicyInfo], Pod]] = []

    def indexes(
        self, subject: int, others: Sequence[int], pods: Sequence[Pod], dst_is_other: bool
    ) -> list[int]:
        """This side's answer index for each pair of `subject` (protected) and one of
        `others` (the peer). Keys are built rule by rule over each rule's peer set, which
        is usually far smaller than the cluster."""
        lists: list[list[int]] = [[] for _ in range(len(pods))]
        for rid, peers in self.rules[subject]:
            if peers is None:
                for lst in lists:
                    lst.append(rid)
            else:
                for d in peers:
                    lists[d].append(rid)
        iso = bool(self.isolated[subject])
        named = self.named[subject]
        out = []
        keys = self.keys
        for o in others:
            dst = pods[o] if dst_is_other else pods[subject]
            key = (
                tuple(lists[o]),
                iso,
                self.ports_id[o if dst_is_other else subject] if named else -1,
            )
            idx = keys.get(key)
            if idx is None:
                idx = len(self.inputs)
                self.inputs.append(([self.by_id[r] for r in lists[o]], self.isolated[subject], dst))
                keys[key] = idx
            out.append(idx)
        return out


def _pairs(
    ev: Evaluator,
    side_answer: Callable[[Direction, list[Rule], list[PolicyInfo], Pod], S],
    combine: Callable[[S, S], T],
) -> dict[str, dict[str, T]]:
    pods = ev.cluster.pods
    keys = [p.key for p in pods]
    egress = _Side(ev, Direction.EGRESS)
    ingress = _Side(ev, Direction.INGRESS)
    # First each pair's side indexes (cheap), then each distinct side once, then cells.
    n = len(pods)
    everyone = list(range(n))
    e_idx = [egress.indexes(si, everyone, pods, dst_is_other=True) for si in range(n)]
    i_idx = [ingress.indexes(di, everyone, pods, dst_is_other=False) for di in range(n)]
    answers = {
        side.direction: [
            side_answer(side.direction, cands, iso, dst) for cands, iso, dst in side.inputs
        ]
        for side in (egress, ingress)
    }
    e_ans, i_ans = answers[Direction.EGRESS], answers[Direction.INGRESS]
    cells: dict[tuple[int, int], T] = {}
    out: dict[str, dict[str, T]] = {}
    for si in range(n):
        row: dict[str, T] = {}
        e_row = e_idx[si]
        for di in range(n):
            if si == di:
                continue
            pair = (e_row[di], i_idx[di][si])
            cell = cells.get(pair)
            if cell is None:
                cell = combine(e_ans[pair[0]], i_ans[pair[1]])
                cells[pair] = cell
            row[keys[di]] = cell
        out[keys[si]] = row
    return out


def port_matrix(ev: Evaluator, ports: Sequence[PortQuery]) -> dict[str, dict[str, dict[str, str]]]:
    names = [str(q) for q in ports]

    def side(
        direction: Direction, cands: list[Rule], iso: list[PolicyInfo], dst: Pod
    ) -> list[Action]:
        return [ev.walk(direction, cands, iso, dst, q.protocol, q.port).verdict for q in ports]

    def combine(e: list[Action], i: list[Action]) -> dict[str, str]:
        return {
            n: (ev_ if ev_ is not Action.ALLOW else iv).value
            for n, ev_, iv in zip(names, e, i, strict=True)
        }

    return _pairs(ev, side, combine)


def _merge(ranges: list[list[int]]) -> Ranges:
    ranges.sort()
    out: Ranges = []
    for lo, hi in ranges:
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return out


def _rule_ports(rule: Rule, dst: Pod, proto: Protocol) -> Ranges:
    """The destination ports of `proto` a rule matches (named ports resolved on dst)."""
    if rule.ports is None:
        return [[1, MAX_PORT]]
    found: list[list[int]] = []
    for p in rule.ports:
        if p.named:
            found.extend(
                [cp.port, cp.port]
                for cp in dst.ports
                if cp.name == p.named
                and cp.protocol == proto
                and (p.protocol is None or p.protocol == proto)
            )
        elif p.protocol == proto:
            if p.start is None:
                found.append([1, MAX_PORT])
            else:
                found.append([p.start, p.end or p.start])
    return _merge(found)


def side_ranges(
    ev: Evaluator,
    direction: Direction,
    cands: Sequence[Rule],
    iso: Sequence[PolicyInfo],
    dst: Pod,
    port_cache: dict[tuple[int, Protocol], Ranges] | None = None,
) -> dict[str, Ranges]:
    """Ports one side allows, per protocol, by carrying intervals of still-undecided ports
    through the rules in order: what a rule matches is decided (or, for Pass, skips to the
    next layer); what is left at the end of the NetworkPolicy layer of an isolated pod is
    dropped; what is left at the end is allowed. The same walk as Evaluator.walk, on
    intervals instead of one port."""
    out: dict[str, Ranges] = {}
    for proto in PROTOCOLS:
        undecided: list[tuple[int, int, int]] = [(1, MAX_PORT, Layer.ADMIN)]  # lo, hi, resume
        allowed: list[list[int]] = []
        for rule in cands:
            layer = rule.policy.layer
            if iso and layer > Layer.NETWORK_POLICY:
                break
            if port_cache is None or rule.has_named_ports:
                ports = _rule_ports(rule, dst, proto)
            else:  # the same for every destination: compute once per rule
                found = port_cache.get((rule.id, proto))
                if found is None:
                    found = port_cache[(rule.id, proto)] = _rule_ports(rule, dst, proto)
                ports = found
            if not ports:
                continue
            action = rule.action
            kept: list[tuple[int, int, int]] = []
            for lo, hi, resume in undecided:
                if layer < resume:
                    kept.append((lo, hi, resume))
                    continue
                cur = lo
                for plo, phi in ports:
                    if phi < cur or plo > hi:
                        continue
                    if plo > cur:
                        kept.append((cur, plo - 1, resume))
                    mlo, mhi = max(plo, cur), min(phi, hi)
                    if action is Action.ALLOW:
                        allowed.append([mlo, mhi])
                    elif action is Action.PASS:
                        kept.append((mlo, mhi, PASS_TARGET[layer]))
                    cur = mhi + 1
                    if cur > hi:
                        break
                if cur <= hi:
                    kept.append((cur, hi, resume))
            undecided = sorted(kept)
            if not undecided:
                break
        if not iso:
            allowed.extend([lo, hi] for lo, hi, _ in undecided)
        out[proto.value] = _merge(allowed)
    return out


def intersect(a: Ranges, b: Ranges) -> Ranges:
    out: Ranges = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo = max(a[i][0], b[j][0])
        hi = min(a[i][1], b[j][1])
        if lo <= hi:
            out.append([lo, hi])
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def all_ports_matrix(ev: Evaluator) -> dict[str, dict[str, dict[str, Ranges]]]:
    port_cache: dict[tuple[int, Protocol], Ranges] = {}

    def side(
        direction: Direction, cands: list[Rule], iso: list[PolicyInfo], dst: Pod
    ) -> dict[str, Ranges]:
        return side_ranges(ev, direction, cands, iso, dst, port_cache)

    interned: dict[tuple[object, ...], dict[str, Ranges]] = {}

    def combine(e: dict[str, Ranges], i: dict[str, Ranges]) -> dict[str, Ranges]:
        cell = {p: intersect(e[p], i[p]) for p in e}
        # Equal answers share one object, so printing encodes each once.
        key = tuple(tuple(map(tuple, r)) for r in cell.values())
        return interned.setdefault(key, cell)

    return _pairs(ev, side, combine)
