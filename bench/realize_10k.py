"""Realizing a 10k-rule policy set vs `ovs-ofctl --bundle add-flows` of the same flows.

Issue 5's goal: fyke / ovs-ofctl <= 1.3, both measured in one run.

Input: bench/gen_netpol.py's generator (NetworkPolicies with pod and namespace selectors,
ipBlocks with excepts, numeric, named and endPort ports), sized so that about 10,000 rules
are realized on one node that holds every pod of the cluster. A real OVS (ovsdb-server and
ovs-vswitchd, userspace datapath) runs in the network namespace fyke-b-realize.

A, fyke, into an empty bridge (all flows deleted before, untimed): from the Kubernetes
objects (already decoded JSON, as a reflector holds them) to every flow installed:
  compile   load_objects + compile_policies (the "compiled policies")
  realize   Evaluator over the cluster + realize() for the node's pods
  build     policy_flows + pod_connectivity (the node's whole pipeline)
  install   FlowSync.sync: the agent's first sync (dump, diff, one atomic bundle)
"with compile" is the sum of all four, "without compile" the last three. Realize and
build run with CPython's cyclic collector paused, as the agent builds its flows
(fyke.util.bulk.gc_paused); compile and install with it on.
B, baseline: the flows A installed, dumped once with `ovs-ofctl dump-flows --no-stats`
into a file; all flows deleted (untimed); then `ovs-ofctl -O OpenFlow15 --bundle add-flows
br-int FILE`, timed as a process (start-up included).
A and B alternate (A B, B A, ...); after every run the installed flows are dumped and must
equal the reference dump. Ratios are of the medians.

Then, once, where A's time goes: the install split into its steps (keys, encoding,
bundle framing) with the switch's own share measured as a floor (the very same bundle,
serialized beforehand, written to a raw socket 256 messages per write as OFConnection
does, timed to the commit reply); one A with the collector left on; and each phase of one
A under cProfile.

Usage: python bench/realize_10k.py [--policies 4600] [--reps 5] [--json]   (root; OVS)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import pstats
import statistics
import struct
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from os_ken.ofproto import ofproto_v1_5 as ofp  # type: ignore[import-untyped]
from os_ken.ofproto import ofproto_v1_5_parser as parser

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gen_netpol
from benchnode import BRIDGE, BenchNode, finish
from fyke.api.load import load_objects
from fyke.datapath.flow import Flow
from fyke.datapath.pod import Gateway, PodPort, pod_connectivity
from fyke.datapath.policy import policy_flows
from fyke.datapath.policy_realize import realize
from fyke.ovs import translate
from fyke.ovs.encode import FlowEncoder, bundle_add
from fyke.ovs.reconcile import FlowSync
from fyke.policy.cluster import Cluster
from fyke.policy.compile import compile_policies
from fyke.policy.evaluate import Evaluator
from fyke.util.bulk import gc_paused

GOAL = 1.3
FIRST_OFPORT = 3  # 1 and 2 are the tunnel and gateway ports on a real node
GATEWAY = Gateway(ofport=2, ip="10.1.255.1", mac="02:00:0a:01:ff:01")
PHASES = ("compile", "realize", "build", "install")
Doc = dict[str, Any]
Profiles = dict[str, cProfile.Profile]
_HEADER = struct.Struct("!BBHI")


@dataclass(frozen=True, slots=True, kw_only=True)
class FykeRun:
    compile: float
    realize: float
    build: float
    install: float
    rules: int
    flows: int

    @property
    def without_compile(self) -> float:
        return self.realize + self.build + self.install

    @property
    def with_compile(self) -> float:
        return self.compile + self.without_compile


@contextlib.contextmanager
def profiled(profiles: Profiles | None, name: str) -> Iterator[None]:
    if profiles is None:
        yield
        return
    prof = profiles.setdefault(name, cProfile.Profile())
    prof.enable()
    try:
        yield
    finally:
        prof.disable()


def pod_ports(ev: Evaluator) -> tuple[dict[int, int], list[PodPort]]:
    """Every pod of the cluster as a local pod: pod index -> ofport, and its PodPort."""
    local: dict[int, int] = {}
    ports: list[PodPort] = []
    for i, pod in enumerate(ev.cluster.pods):
        ofport = FIRST_OFPORT + i
        local[i] = ofport
        ip = str(pod.ips[0])
        mac = "02:00:" + ":".join(f"{int(b):02x}" for b in ip.split("."))
        ports.append(PodPort(ofport=ofport, name=f"p{i}", ip=ip, mac=mac))
    return local, ports


def desired_flows(
    docs: list[Doc],
    times: dict[str, float],
    profiles: Profiles | None = None,
    pause: Callable[[], contextlib.AbstractContextManager[None]] = gc_paused,
) -> tuple[int, list[Flow]]:
    """Kubernetes objects -> the node's flows; phase times into `times`."""
    t0 = time.perf_counter()
    with profiled(profiles, "compile"):
        inv = load_objects(docs)
        compiled = compile_policies(inv)
    t1 = time.perf_counter()
    with pause(), profiled(profiles, "realize"):
        ev = Evaluator(Cluster(inv.namespaces, inv.pods, inv.nodes), compiled)
        local, ports = pod_ports(ev)
        node_policy = realize(ev, local)
    t2 = time.perf_counter()
    with pause(), profiled(profiles, "build"):
        flows = pod_connectivity(GATEWAY, ports, round=1) + policy_flows(node_policy, round=1)
    t3 = time.perf_counter()
    times.update(compile=t1 - t0, realize=t2 - t1, build=t3 - t2)
    return len(node_policy.rules), flows


async def fyke_install(
    node: BenchNode,
    docs: list[Doc],
    profiles: Profiles | None = None,
    pause: Callable[[], contextlib.AbstractContextManager[None]] = gc_paused,
) -> FykeRun:
    """A: objects -> compiled -> realized -> flows -> installed, phase by phase."""
    assert node.conn is not None
    times: dict[str, float] = {}
    rules, flows = desired_flows(docs, times, profiles, pause)
    t0 = time.perf_counter()
    with profiled(profiles, "install"):
        result = await FlowSync(node.conn).sync(flows)
    install = time.perf_counter() - t0
    assert result.added == len(flows) and not result.deleted, result
    return FykeRun(install=install, rules=rules, flows=len(flows), **times)


async def fyke_install_gc_on(node: BenchNode, docs: list[Doc]) -> FykeRun:
    """A with CPython's cyclic collector left on throughout (what pausing it saves)."""
    gc.collect()
    return await fyke_install(node, docs, pause=contextlib.nullcontext)


def ofctl_install(node: BenchNode, dump_file: Path) -> float:
    """B: one `ovs-ofctl --bundle add-flows` process, timed from start to exit."""
    t0 = time.perf_counter()
    node.ofctl("--bundle", "add-flows", BRIDGE, str(dump_file))
    return time.perf_counter() - t0


def empty(node: BenchNode) -> None:
    node.ofctl("del-flows", BRIDGE)
    assert not node.dump_flows()


def check_same(node: BenchNode, reference: list[str], what: str) -> None:
    got = node.dump_flows()
    if got != reference:
        missing, extra = set(reference) - set(got), set(got) - set(reference)
        raise AssertionError(
            f"{what}: installed flows differ from the reference dump: {len(missing)} missing "
            f"(e.g. {sorted(missing)[:2]}), {len(extra)} extra (e.g. {sorted(extra)[:2]})"
        )


# --- where the install goes -----------------------------------------------------------


def _bytes(msg: Any, xid: int) -> bytes:
    msg.set_xid(xid)
    msg.serialize()
    return bytes(msg.buf)


async def _raw_bundle(
    mgmt: Path, adds: list[bytes], bundle_id: int, commit_xid: int, per_write: int
) -> tuple[float, float]:
    """Send pre-serialized bundle messages on a fresh connection, `per_write` messages
    per socket write, then a barrier, then the commit: seconds from the first write to the
    barrier's reply (the switch has taken every add) and from there to the commit reply
    (the switch applies the bundle: work nothing can overlap)."""
    flags = ofp.OFPBF_ATOMIC | ofp.OFPBF_ORDERED
    reader, writer = await asyncio.open_unix_connection(str(mgmt))

    async def reply(want_type: int, want_xid: int) -> None:
        while True:
            head = await reader.readexactly(_HEADER.size)
            _, msg_type, length, xid = _HEADER.unpack(head)
            await reader.readexactly(length - _HEADER.size)
            if msg_type == ofp.OFPT_ERROR:
                raise RuntimeError(f"switch error for xid {xid}")
            if msg_type == want_type and xid == want_xid:
                return

    try:
        writer.write(_bytes(parser.OFPHello(translate.DP), 1))
        head = await reader.readexactly(_HEADER.size)
        await reader.readexactly(_HEADER.unpack(head)[2] - _HEADER.size)
        ctrl = parser.OFPBundleCtrlMsg
        opening = _bytes(ctrl(translate.DP, bundle_id, ofp.OFPBCT_OPEN_REQUEST, flags, []), 2)
        barrier = _bytes(parser.OFPBarrierRequest(translate.DP), commit_xid + 1)
        commit = _bytes(
            ctrl(translate.DP, bundle_id, ofp.OFPBCT_COMMIT_REQUEST, flags, []), commit_xid
        )
        t0 = time.perf_counter()
        writer.write(opening)
        for i in range(0, len(adds), per_write):
            writer.write(b"".join(adds[i : i + per_write]))
            if i % 512 + per_write >= 512:
                await writer.drain()
        writer.write(barrier)
        await reply(ofp.OFPT_BARRIER_REPLY, commit_xid + 1)
        t1 = time.perf_counter()
        writer.write(commit)
        await reply(ofp.OFPT_BUNDLE_CONTROL, commit_xid)
        return t1 - t0, time.perf_counter() - t1
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def install_breakdown(node: BenchNode, docs: list[Doc]) -> dict[str, float]:
    """The steps of FlowSync.sync's first sync, timed one by one, and the switch's floor."""
    assert node.daemons is not None
    _, flows = desired_flows(docs, {})
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    keys = {f.key: f for f in flows}
    out["keys (table, priority, match) of the desired flows"] = time.perf_counter() - t0
    assert len(keys) == len(flows)
    t0 = time.perf_counter()
    enc = FlowEncoder()
    mods = [enc.flow_mod(f) for f in flows]
    out["encode (FlowEncoder, cold caches)"] = time.perf_counter() - t0
    bundle_id, flags = 7, ofp.OFPBF_ATOMIC | ofp.OFPBF_ORDERED
    t0 = time.perf_counter()
    adds = [bundle_add(m, bundle_id=bundle_id, flags=flags, xid=3 + i) for i, m in enumerate(mods)]
    out["bundle framing (bundle-add headers)"] = time.perf_counter() - t0
    mgmt = node.daemons.paths.mgmt(BRIDGE)
    empty(node)
    added, committed = await _raw_bundle(mgmt, adds, bundle_id, 3 + len(adds), 256)
    out["switch floor: the serialized bundle, 256 per write, to commit reply"] = added + committed
    out["  of which: adds sent and taken (to a barrier's reply)"] = added
    out["  of which: the commit (bundle applied; nothing overlaps it)"] = committed
    return {k: round(v, 3) for k, v in out.items()}


def profile_lines(prof: cProfile.Profile, limit: int) -> list[str]:
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(limit)
    lines = out.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
    site = str(Path(parser.__file__).parents[2])
    return [
        line.rstrip().replace(site + "/", "").replace(str(Path.cwd()) + "/", "")
        for line in lines[start + 1 : start + limit + 1]
        if line.strip()
    ]


# --- the run --------------------------------------------------------------------------


async def bench(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    docs = gen_netpol.generate(
        gen_netpol.Shape(args.namespaces, args.pods), args.policies, args.seed
    )
    fyke_runs: list[FykeRun] = []
    ofctl_runs: list[float] = []
    async with BenchNode("realize") as node:
        # The reference: what fyke installs, dumped as ovs-ofctl text (B's input file).
        empty(node)
        first = await fyke_install(node, docs)
        reference = node.dump_flows()
        assert len(reference) == first.flows, (len(reference), first.flows)
        dump_file = tmp / "flows.txt"
        dump_file.write_text("\n".join(reference) + "\n")
        empty(node)
        ofctl_install(node, dump_file)  # warm-up of B, as the first A warmed up A
        check_same(node, reference, "ovs-ofctl warm-up")
        for rep in range(args.reps):
            for side in ("fyke", "ofctl") if rep % 2 == 0 else ("ofctl", "fyke"):
                empty(node)
                if side == "fyke":
                    fyke_runs.append(await fyke_install(node, docs))
                else:
                    ofctl_runs.append(ofctl_install(node, dump_file))
                check_same(node, reference, f"{side} run {rep + 1}")
        rss = node.vswitchd_rss_mib()
        breakdown: dict[str, float] = {}
        profile: dict[str, list[str]] = {}
        gc_on: FykeRun | None = None
        if args.profile:
            breakdown = await install_breakdown(node, docs)
            check_same(node, reference, "raw bundle")
            empty(node)
            gc_on = await fyke_install_gc_on(node, docs)
            empty(node)
            profiles: Profiles = {}
            await fyke_install(node, docs, profiles)
            profile = {name: profile_lines(profiles[name], args.profile_lines) for name in PHASES}
    med = {
        k: statistics.median(getattr(r, k) for r in fyke_runs)
        for k in (*PHASES, "with_compile", "without_compile")
    }
    ofctl = statistics.median(ofctl_runs)
    return {
        "shape": {
            "namespaces": args.namespaces,
            "pods_per_namespace": args.pods,
            "policies": args.policies,
            "seed": args.seed,
        },
        "compiled_rules": len(compile_policies(load_objects(docs)).rules),
        "realized_rules": first.rules,
        "flows": first.flows,
        "reps": args.reps,
        "fyke_s": {k: round(v, 3) for k, v in med.items()},
        "fyke_runs_without_compile_s": [round(r.without_compile, 3) for r in fyke_runs],
        "ofctl_s": round(ofctl, 3),
        "ofctl_runs_s": [round(t, 3) for t in ofctl_runs],
        "ratio_with_compile": round(med["with_compile"] / ofctl, 2),
        "ratio_without_compile": round(med["without_compile"] / ofctl, 2),
        "ratio_install_only": round(med["install"] / ofctl, 2),
        "goal": GOAL,
        "goal_met": med["without_compile"] / ofctl <= GOAL,
        "same_flows": True,  # check_same raised otherwise
        "vswitchd_rss_mib": round(rss, 1),
        "install_breakdown_s": breakdown,
        "fyke_gc_on_s": None
        if gc_on is None
        else {k: round(getattr(gc_on, k), 3) for k in (*PHASES, "without_compile")},
        "profile_by_tottime": profile,
    }


def report(r: dict[str, Any]) -> None:
    s, f = r["shape"], r["fyke_s"]
    print(
        f"{s['namespaces']}x{s['pods_per_namespace']} pods (all on the node), "
        f"{s['policies']} NetworkPolicies, seed {s['seed']}: {r['compiled_rules']} rules "
        f"compiled, {r['realized_rules']} realized, {r['flows']} flows; {r['reps']} runs each"
    )
    print(
        f"fyke, medians (s): compile {f['compile']}, realize {f['realize']}, "
        f"build {f['build']}, install {f['install']}"
    )
    print(
        f"fyke without compile  {f['without_compile']:8.3f} s  {r['fyke_runs_without_compile_s']}"
    )
    print(f"fyke with compile     {f['with_compile']:8.3f} s")
    print(f"ovs-ofctl --bundle    {r['ofctl_s']:8.3f} s  {r['ofctl_runs_s']}")
    verdict = "met" if r["goal_met"] else "NOT met"
    print(
        f"fyke/ofctl: {r['ratio_without_compile']}x without compile, "
        f"{r['ratio_with_compile']}x with compile, {r['ratio_install_only']}x the install "
        f"alone; goal <= {GOAL} (without compile): {verdict}"
    )
    print(f"same flows installed: yes; vswitchd RSS {r['vswitchd_rss_mib']} MiB")
    if r["fyke_gc_on_s"]:
        g = r["fyke_gc_on_s"]
        print(
            f"one fyke run with the collector left on (s): realize {g['realize']}, build "
            f"{g['build']}, install {g['install']}; without compile {g['without_compile']}"
        )
    if r["install_breakdown_s"]:
        print("install, step by step (s):")
        for step, secs in r["install_breakdown_s"].items():
            print(f"  {secs:8.3f}  {step}")
    for phase, lines in r["profile_by_tottime"].items():
        print(f"cProfile, {phase}, by own time:")
        print("\n".join(lines))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--namespaces", type=int, default=5)
    ap.add_argument("--pods", type=int, default=10, help="pods per namespace")
    ap.add_argument("--policies", type=int, default=4600)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--no-profile", dest="profile", action="store_false")
    ap.add_argument("--profile-lines", type=int, default=12)
    ap.add_argument("--json", action="store_true", help="print only the JSON result")
    args = ap.parse_args()
    return finish(bench, args, report)


if __name__ == "__main__":
    raise SystemExit(main())
