"""Reachability matrices over every ordered pair of distinct pods.

Pairs that see the same candidate rules on both sides (and the same destination ports,
for named ports) get the same answer, so answers are cached by that signature: a cluster
of thousands of pods costs about as many walks as it has distinct signatures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fyke.api.core import PROTOCOLS, Direction, Pod, Protocol
from fyke.policy.cluster import Endpoint
from fyke.policy.evaluate import Evaluator
from fyke.policy.model import Action, PolicyInfo, Rule

MAX_PORT = 65535
Ranges = list[list[int]]  # [[start, end], ...] inclusive, sorted, merged


@dataclass(frozen=True, slots=True)
class PortQuery:
    protocol: Protocol
    port: int

    def __str__(self) -> str:
        return f"{self.port}/{self.protocol.value}"


def _signature(
    ev: Evaluator, src: int, dst: int
) -> tuple[list[Rule], list[PolicyInfo], list[Rule], list[PolicyInfo], tuple[object, ...]]:
    pods = ev.cluster.pods
    s, d = pods[src], pods[dst]
    if s.host_network:
        e_c: list[Rule] = []
        e_i: list[PolicyInfo] = []
    else:
        e_c = ev.candidates(Direction.EGRESS, src, Endpoint(pod=dst))
        e_i = ev.isolated_by(Direction.EGRESS, src)
    if d.host_network:
        i_c: list[Rule] = []
        i_i: list[PolicyInfo] = []
    else:
        i_c = ev.candidates(Direction.INGRESS, dst, Endpoint(pod=src))
        i_i = ev.isolated_by(Direction.INGRESS, dst)
    named = any(p.named for r in (*e_c, *i_c) if r.ports is not None for p in r.ports)
    key = (
        tuple(r.id for r in e_c),
        bool(e_i),
        tuple(r.id for r in i_c),
        bool(i_i),
        d.ports if named else (),
    )
    return e_c, e_i, i_c, i_i, key


def _verdict(
    ev: Evaluator,
    e_c: Sequence[Rule],
    e_i: Sequence[PolicyInfo],
    i_c: Sequence[Rule],
    i_i: Sequence[PolicyInfo],
    dst: Pod,
    proto: Protocol,
    port: int,
) -> Action:
    eg = ev.walk(Direction.EGRESS, e_c, e_i, dst, proto, port)
    if eg.verdict is not Action.ALLOW:
        return eg.verdict
    return ev.walk(Direction.INGRESS, i_c, i_i, dst, proto, port).verdict


def port_matrix(ev: Evaluator, ports: Sequence[PortQuery]) -> dict[str, dict[str, dict[str, str]]]:
    pods = ev.cluster.pods
    cache: dict[tuple[object, ...], dict[str, str]] = {}
    out: dict[str, dict[str, dict[str, str]]] = {}
    for si, s in enumerate(pods):
        row: dict[str, dict[str, str]] = {}
        for di, d in enumerate(pods):
            if si == di:
                continue
            e_c, e_i, i_c, i_i, key = _signature(ev, si, di)
            cell = cache.get(key)
            if cell is None:
                cell = {
                    str(q): _verdict(ev, e_c, e_i, i_c, i_i, d, q.protocol, q.port).value
                    for q in ports
                }
                cache[key] = cell
            row[d.key] = dict(cell)
        out[s.key] = row
    return out


def _breakpoints(rules: Sequence[Rule], dst: Pod, proto: Protocol) -> set[int]:
    cuts = {1}
    for r in rules:
        if r.ports is None:
            continue
        for p in r.ports:
            if p.named:
                for cp in dst.ports:
                    if cp.name == p.named and cp.protocol == proto:
                        cuts.update((cp.port, cp.port + 1))
            elif p.protocol == proto and p.start is not None:
                cuts.update((p.start, (p.end or p.start) + 1))
    return {c for c in cuts if c <= MAX_PORT}


def allowed_ranges(
    ev: Evaluator,
    e_c: Sequence[Rule],
    e_i: Sequence[PolicyInfo],
    i_c: Sequence[Rule],
    i_i: Sequence[PolicyInfo],
    dst: Pod,
) -> dict[str, Ranges]:
    """Allowed destination port ranges per protocol: evaluated once per interval on which
    no rule's port match changes."""
    out: dict[str, Ranges] = {}
    rules = [*e_c, *i_c]
    for proto in PROTOCOLS:
        cuts = sorted(_breakpoints(rules, dst, proto))
        ranges: Ranges = []
        for i, start in enumerate(cuts):
            end = cuts[i + 1] - 1 if i + 1 < len(cuts) else MAX_PORT
            if _verdict(ev, e_c, e_i, i_c, i_i, dst, proto, start) is Action.ALLOW:
                if ranges and ranges[-1][1] == start - 1:
                    ranges[-1][1] = end
                else:
                    ranges.append([start, end])
        out[proto.value] = ranges
    return out


def all_ports_matrix(ev: Evaluator) -> dict[str, dict[str, dict[str, Ranges]]]:
    pods = ev.cluster.pods
    cache: dict[tuple[object, ...], dict[str, Ranges]] = {}
    out: dict[str, dict[str, dict[str, Ranges]]] = {}
    for si, s in enumerate(pods):
        row: dict[str, dict[str, Ranges]] = {}
        for di, d in enumerate(pods):
            if si == di:
                continue
            e_c, e_i, i_c, i_i, key = _signature(ev, si, di)
            cell = cache.get(key)
            if cell is None:
                cell = allowed_ranges(ev, e_c, e_i, i_c, i_i, d)
                cache[key] = cell
            row[d.key] = {k: [list(r) for r in v] for k, v in cell.items()}
        out[s.key] = row
    return out
