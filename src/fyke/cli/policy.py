"""`fykectl policy matrix` and `fykectl policy explain`: offline answers from manifests."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from fyke.api.errors import ValidationError
from fyke.api.load import load_texts, read_sources
from fyke.policy.cluster import Cluster
from fyke.policy.compile import compile_policies
from fyke.policy.evaluate import Evaluator
from fyke.policy.explain import decision_json, decision_text
from fyke.policy.matrix import PortQuery, all_ports_matrix, port_matrix
from fyke.util.bulk import bulk_work

DEFAULT_PORT = "80/TCP"


def register(sub: Any) -> None:
    p = sub.add_parser("policy", help="offline policy tools")
    psub = p.add_subparsers(dest="policy_command", required=True, metavar="COMMAND")

    m = psub.add_parser("matrix", help="verdicts for every ordered pair of pods")
    add_file_args(m)
    m.add_argument(
        "--port",
        action="extend",
        nargs="+",
        default=[],
        metavar="PORT/PROTO",
        help=f"ports to check (repeatable; default {DEFAULT_PORT})",
    )
    m.add_argument(
        "--all-ports",
        action="store_true",
        help="print the allowed port ranges per protocol for each pair",
    )
    m.add_argument("-o", "--output", choices=("json", "table"), default="table")
    m.set_defaults(func=run_matrix)

    e = psub.add_parser("explain", help="the verdict for one connection and why")
    add_file_args(e)
    e.add_argument("--from", dest="src", required=True, metavar="NS/POD|IP")
    e.add_argument("--to", dest="dst", required=True, metavar="NS/POD|IP")
    e.add_argument("--port", default=DEFAULT_PORT, metavar="PORT/PROTO")
    e.add_argument("-o", "--output", choices=("json", "text"), default="text")
    e.set_defaults(func=run_explain)


def add_file_args(p: argparse.ArgumentParser) -> None:
    """-f/--filename FILE..., repeatable: what every command that reads manifests takes."""
    p.add_argument(
        "-f",
        "--filename",
        action="extend",
        nargs="+",
        required=True,
        metavar="FILE",
        help="manifests: YAML or JSON, multi-document, kind List; '-' is stdin; "
        "a directory reads its .yaml, .yml and .json files",
    )


def parse_port(text: str) -> PortQuery:
    return PortQuery.parse(text)


def parse_ports(texts: list[str]) -> list[PortQuery]:
    """--port values (DEFAULT_PORT when none), each once, in first-seen order."""
    return list(dict.fromkeys(parse_port(t) for t in texts or [DEFAULT_PORT]))


def load_evaluator(names: list[str]) -> Evaluator:
    texts = read_sources(names)
    with bulk_work():
        inv = load_texts(texts)
        compiled = compile_policies(inv)
        evaluator = Evaluator(Cluster(inv.namespaces, inv.pods, inv.nodes), compiled)
    for w in compiled.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return evaluator


def run_matrix(args: argparse.Namespace) -> int:
    ports = parse_ports(args.port)
    ev = load_evaluator(args.filename)
    # The order the lab API server lists pods in, so `lab probe` prints the same JSON.
    pods = [p.key for p in sorted(ev.cluster.pods, key=lambda p: (p.namespace, p.name))]
    if args.all_ports:
        ranges = all_ports_matrix(ev)
        if args.output == "json":
            _print_matrix_json({"pods": pods}, pods, ranges)
        else:
            print(_ranges_table(pods, ranges))
        return 0
    matrix = port_matrix(ev, ports)
    names = [str(q) for q in ports]
    if args.output == "json":
        _print_matrix_json({"ports": names, "pods": pods}, pods, matrix)
    else:
        print(_verdict_table(pods, names, matrix))
    return 0


def run_explain(args: argparse.Namespace) -> int:
    query = parse_port(args.port)
    ev = load_evaluator(args.filename)
    src = ev.cluster.endpoint(args.src)
    dst = ev.cluster.endpoint(args.dst)
    if src.pod is None and dst.pod is None:
        raise ValidationError(None, "", "--from or --to must be a pod (or a pod's IP)")
    decision = ev.decide(src, dst, query.protocol, query.port)
    s, d = ev.cluster.describe(src), ev.cluster.describe(dst)
    if args.output == "json":
        _print_json(decision_json(decision, s, d, str(query)))
    else:
        print(decision_text(decision, s, d, str(query)))
    return 0


def _print_json(value: object) -> None:
    json.dump(value, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _print_matrix_json(
    head: dict[str, object], pods: list[str], matrix: dict[str, dict[str, Any]]
) -> None:
    """{**head, "matrix": matrix} as compact JSON, rows and cells in `pods` order. Pairs
    share cell objects, so each distinct cell is encoded once and the text is joined: the
    output runs to megabytes."""
    encoded: dict[int, str] = {}
    dump = json.dumps
    quoted = {key: dump(key) for key in pods}
    parts = [dump(head, separators=(",", ":"))[:-1], ',"matrix":{']
    rows = []
    for src in pods:
        row = matrix[src]
        cells = []
        for dst in pods:
            if dst == src:
                continue
            cell = row[dst]
            text = encoded.get(id(cell))
            if text is None:
                text = encoded[id(cell)] = dump(cell, separators=(",", ":"))
            cells.append(f"{quoted[dst]}:{text}")
        rows.append(f"{quoted[src]}:{{{','.join(cells)}}}")
    parts.append(",".join(rows))
    parts.append("}}\n")
    sys.stdout.write("".join(parts))


_SYMBOL = {"allow": ".", "drop": "X", "reject": "R"}


def _verdict_table(
    pods: list[str], ports: list[str], matrix: dict[str, dict[str, dict[str, str]]]
) -> str:
    width = max([len(p) for p in pods] + [4])
    out: list[str] = []
    for port in ports:
        out.append(f"{port}  (. allow, X drop, R reject; rows are sources)")
        out.append(" " * width + " " + " ".join(p.rjust(width) for p in pods))
        for s in pods:
            cells = ["-" if s == d else _SYMBOL[matrix[s][d][port]] for d in pods]
            out.append(s.ljust(width) + " " + " ".join(c.rjust(width) for c in cells))
        out.append("")
    return "\n".join(out).rstrip()


def _format_ranges(ranges: list[list[int]]) -> str:
    if not ranges:
        return "none"
    if ranges == [[1, 65535]]:
        return "all"
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in ranges)


def _ranges_table(pods: list[str], matrix: dict[str, dict[str, dict[str, list[list[int]]]]]) -> str:
    lines = []
    for s in pods:
        for d in pods:
            if s == d:
                continue
            cell = matrix[s][d]
            parts = " ".join(f"{proto}:{_format_ranges(r)}" for proto, r in cell.items())
            lines.append(f"{s} -> {d}  {parts}")
    return "\n".join(lines)
