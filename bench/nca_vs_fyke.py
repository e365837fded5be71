"""Benchmark and differential check: fyke vs network-config-analyzer (NCA) 2.1.0.

Both tools get the same generated cluster (bench/gen_netpol.py) and are run as subprocesses,
so the timings include interpreter start-up for both. Each answer is reduced to one map:
(src pod, dst pod) -> protocol -> merged inclusive destination-port ranges, for TCP/UDP/SCTP
and distinct pods only (NCA also reports ipBlock endpoints and other protocols; fyke's
contract covers pod pairs and these three protocols).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import gen_netpol

Ranges = list[tuple[int, int]]
Conns = dict[str, Ranges]  # protocol -> ranges; protocols with no ports allowed are absent
Matrix = dict[tuple[str, str], Conns]

BENCH = Path(__file__).resolve().parent
NCA_BIN = BENCH / ".venv-nca" / "bin" / "nca"
FYKECTL = BENCH.parent / ".venv" / "bin" / "fykectl"
PROTOS = ("TCP", "UDP", "SCTP")
FULL: Ranges = [(1, 65535)]
SIZES = {"small": (10, 20, 100), "large": (20, 25, 250)}  # namespaces, pods/ns, policies


def merge(ranges: Ranges) -> Ranges:
    out: Ranges = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def subtract(a: Ranges, b: Ranges) -> Ranges:
    """a minus b; both merged."""
    out: Ranges = []
    for lo, hi in a:
        for blo, bhi in b:
            if bhi < lo or blo > hi:
                continue
            if blo > lo:
                out.append((lo, blo - 1))
            lo = bhi + 1
            if lo > hi:
                break
        if lo <= hi:
            out.append((lo, hi))
    return out


def union_into(dst: Conns, src: Conns) -> None:
    for proto, ranges in src.items():
        dst[proto] = merge(dst.get(proto, []) + ranges)


# --- NCA -----------------------------------------------------------------------------------
# txt_no_fw_rules prints one line per (src, dst, connection-set) with `--output_endpoints pods`:
#   ns-01/web-03 => ns-02/db-00 : {protocols:TCP, UDP,dst_ports:53,8000-8009},{protocols:SCTP}
# or "All connections" / "All but {...}" (complement, whichever string is shorter). A pair can
# appear on several lines, so lines are unioned. Dimensions equal to the full domain are omitted.
NCA_LINE = re.compile(r"^(\S+) => (\S+) : (.+)$")
NCA_CUBE = re.compile(r"\{([^{}]*)\}")
NCA_ITEM_SPLIT = re.compile(r",(?=[a-z_]+:)")


def _nca_cube(body: str) -> Conns:
    protos: set[str] = set(PROTOS)
    ports = FULL
    for item in NCA_ITEM_SPLIT.split(body):
        key, _, value = item.partition(":")
        if key == "protocols":
            negate = value.startswith("all but ")
            names = {n.strip() for n in value.removeprefix("all but ").split(",")}
            protos = set(PROTOS) - names if negate else set(PROTOS) & names
        elif key == "dst_ports":
            ports = merge(
                [(int(a), int(b or a)) for a, _, b in (p.partition("-") for p in value.split(","))]
            )
        elif key in ("icmp_type", "icmp_code"):
            continue  # only restricts ICMP, which is outside the compared protocols
        else:
            raise ValueError(f"unexpected NCA connection dimension {key!r} in {body!r}")
    return {p: ports for p in protos}


def parse_nca_conn(text: str) -> Conns:
    if text == "All connections":
        return {p: FULL for p in PROTOS}
    if text == "No connections":
        return {}
    negate = text.startswith("All but ")
    conns: Conns = {}
    for body in NCA_CUBE.findall(text):
        union_into(conns, _nca_cube(body))
    if negate:
        conns = {p: subtract(FULL, conns.get(p, [])) for p in PROTOS}
    return {p: r for p, r in conns.items() if r}


def parse_nca(text: str, pods: set[str]) -> Matrix:
    matrix: Matrix = {}
    for line in text.splitlines():
        m = NCA_LINE.match(line)
        if not m:
            continue
        src, dst = (s.removesuffix("[Pod]") for s in m.group(1, 2))
        if src not in pods or dst not in pods or src == dst:
            continue  # ipBlock endpoints
        union_into(matrix.setdefault((src, dst), {}), parse_nca_conn(m.group(3)))
    return {k: v for k, v in matrix.items() if v}


def run_nca(cluster: Path, out: Path, timeout: float) -> float:
    cmd = [
        str(NCA_BIN),
        "--connectivity",
        "-r",
        str(cluster),
        "-o",
        "txt_no_fw_rules",
        "--output_endpoints",
        "pods",
        "-f",
        str(out),
    ]
    t0 = time.perf_counter()
    # NCA prints warnings (unresolved named ports, empty selectors) on stdout/stderr; keep them.
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    elapsed = time.perf_counter() - t0
    out.with_suffix(".log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"nca failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return elapsed


# --- fyke ----------------------------------------------------------------------------------
def parse_fyke(doc: dict[str, object]) -> Matrix:
    matrix: Matrix = {}
    raw = doc["matrix"]
    assert isinstance(raw, dict)
    for src, row in raw.items():
        for dst, conns in row.items():
            if src == dst:
                continue
            got = {
                p: merge([(int(lo), int(hi)) for lo, hi in r])
                for p, r in conns.items()
                if p in PROTOS and r
            }
            if got:
                matrix[(src, dst)] = got
    return matrix


def run_fyke(cluster: Path, out: Path, timeout: float) -> float:
    cmd = [str(FYKECTL), "policy", "matrix", "-f", str(cluster), "--all-ports", "-o", "json"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    elapsed = time.perf_counter() - t0
    out.write_text(proc.stdout)
    if proc.returncode != 0:
        raise RuntimeError(f"fykectl failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return elapsed


def fyke_available() -> bool:
    if not FYKECTL.exists():
        return False
    probe = subprocess.run(
        [str(FYKECTL), "policy", "matrix", "--help"], capture_output=True, text=True, check=False
    )
    return probe.returncode == 0


# --- comparison ----------------------------------------------------------------------------
def fmt(ranges: Ranges) -> str:
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


def diff(nca: Matrix, fyke: Matrix) -> list[tuple[str, str, str]]:
    """Return (pair, only-in-NCA, only-in-fyke) for every pair the tools disagree on."""
    out = []
    for pair in sorted(nca.keys() | fyke.keys()):
        a, b = nca.get(pair, {}), fyke.get(pair, {})
        if a == b:
            continue
        only_a = {p: subtract(a.get(p, []), b.get(p, [])) for p in PROTOS}
        only_b = {p: subtract(b.get(p, []), a.get(p, [])) for p in PROTOS}
        out.append(
            (
                f"{pair[0]} -> {pair[1]}",
                " ".join(f"{p}:{fmt(r)}" for p, r in only_a.items() if r) or "-",
                " ".join(f"{p}:{fmt(r)}" for p, r in only_b.items() if r) or "-",
            )
        )
    return out


def pod_names(docs: list[gen_netpol.Doc]) -> set[str]:
    return {
        f"{d['metadata']['namespace']}/{d['metadata']['name']}" for d in docs if d["kind"] == "Pod"
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="small,large", help=f"comma list of {sorted(SIZES)}")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--divergent",
        action="store_true",
        help="also generate constructs NCA gets wrong (see gen_netpol.py) to count them",
    )
    ap.add_argument("--skip-fyke", action="store_true", help="time NCA alone")
    ap.add_argument("--examples", type=int, default=5, help="mismatches to print per size")
    ap.add_argument("--timeout", type=float, default=3600.0, help="per tool run, seconds")
    ap.add_argument("--keep", type=Path, help="keep inputs/outputs in this directory")
    ap.add_argument("--strict", action="store_true", help="exit 1 if any pair differs")
    args = ap.parse_args(argv)

    if not NCA_BIN.exists():
        print(f"missing {NCA_BIN}; run bench/run.sh to create it", file=sys.stderr)
        return 2
    use_fyke = not args.skip_fyke and fyke_available()
    if not args.skip_fyke and not use_fyke:
        print(f"note: {FYKECTL} policy matrix unavailable; timing NCA alone", file=sys.stderr)

    work = args.keep or Path(tempfile.mkdtemp(prefix="nca-vs-fyke-"))
    work.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, ...]] = []
    total_mismatch = 0
    try:
        for size in args.sizes.split(","):
            ns, pods, pols = SIZES[size]
            shape = gen_netpol.Shape(ns, pods, args.divergent, args.divergent)
            docs = gen_netpol.generate(shape, pols, args.seed)
            cluster = work / f"{size}.yaml"
            gen_netpol.write(docs, cluster)
            names = pod_names(docs)
            print(f"[{size}] running NCA ...", file=sys.stderr, flush=True)  # it takes minutes
            nca_s = run_nca(cluster, work / f"{size}.nca.txt", args.timeout)
            nca = parse_nca((work / f"{size}.nca.txt").read_text(), names)
            label = f"{size} ({ns}x{pods} pods, {pols} policies)"
            if not use_fyke:
                rows.append((label, f"{nca_s:.2f}", "-", "-", "-", str(len(nca))))
                continue
            fyke_s = run_fyke(cluster, work / f"{size}.fyke.json", args.timeout)
            fyke = parse_fyke(json.loads((work / f"{size}.fyke.json").read_text()))
            bad = diff(nca, fyke)
            total_mismatch += len(bad)
            rows.append(
                (
                    label,
                    f"{nca_s:.2f}",
                    f"{fyke_s:.2f}",
                    f"{nca_s / fyke_s:.1f}x",
                    str(len(bad)),
                    f"{len(nca)}/{len(fyke)}",
                )
            )
            for pair, only_nca, only_fyke in bad[: args.examples]:
                print(f"[{size}] {pair}: only NCA allows {only_nca}; only fyke allows {only_fyke}")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    header = ("size", "NCA s", "fyke s", "NCA/fyke", "mismatches", "pairs with conns NCA/fyke")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    return 1 if args.strict and total_mismatch else 0


if __name__ == "__main__":
    raise SystemExit(main())
