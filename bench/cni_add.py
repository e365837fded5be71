"""CNI ADD latency: fyke vs the reference `bridge` + `host-local` plugins; pods/s in the lab.

- fyke: a one-node lab; `fyke-cni` run exactly as the lab kubelet runs it (`ip netns exec
  fyke-node-1 fyke-cni`, CNI_* environment, the lab's conflist on stdin): shim -> agent
  socket -> IPAM, veth into the pod netns, OVS port on br-int (userspace datapath), flows.
- baseline, same run, lab up: Debian's `bridge` + `host-local` (CNI 1.0.0) run inside a
  namespace of its own: veth into the same pod netns, port on a linux bridge, IPAM.
- N ADDs one after another (wall time per ADD, process start included), N DELs, then N ADDs
  with P in flight (pods/s). Pod netns are made beforehand, untimed. One ping per side.
- fyke's phases: cheaper paths through the same shim and agent (VERSION, STATUS, DEL of an
  unknown container = ADD's first step) and the agent's IPAM and veth code in-process.
- lab: `fykectl lab apply -f <L pods> --wait`, then `fykectl lab delete ... --wait`.

Usage: python bench/cni_add.py [--pods 100] [--parallel 10] [--lab-pods 200]  (root;
`apt-get install -y containernetworking-plugins`)
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
FYKECTL = str(BIN / "fykectl")
NODE_NS = "fyke-node-1"
HOST_NS = "fyke-bench-host"
REF_BIN = Path("/usr/lib/cni")
LAB_NS = "fyke-bench"
Result = dict[str, Any]
BRIDGE_CONF = (
    '{"cniVersion": "1.0.0", "name": "b", "type": "bridge", "bridge": "fyke-bbr0", '
    '"isGateway": true, "ipam": {"type": "host-local", "subnet": "10.250.0.0/16", '
    '"dataDir": "DIR"}}'
)


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(args, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: exit {r.returncode}: {r.stderr.strip()[-3000:]}")
    return r


def in_ns(ns: str, *argv: str) -> tuple[str, ...]:
    return ("ip", "netns", "exec", ns, *argv)


def pod_ns(i: int) -> str:
    return f"fyke-bench-pod-{i}"


def cid(i: int) -> str:
    return hashlib.sha256(f"fyke-bench-{i}".encode()).hexdigest()


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def ms(x: float) -> str:
    return f"{x * 1000:.1f}"


@dataclasses.dataclass(frozen=True, slots=True)
class Plugin:
    name: str
    argv: tuple[str, ...]
    conf: str
    cni_path: str

    def call(self, command: str, i: int) -> tuple[float, Result]:
        c = cid(i)
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": c,
            "CNI_NETNS": f"/var/run/netns/{pod_ns(i)}",
            "CNI_IFNAME": "eth0",
            "CNI_PATH": self.cni_path,
            "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=pod-{i};"
            f"K8S_POD_INFRA_CONTAINER_ID={c};K8S_POD_UID=uid-{i}",
        }
        t0 = time.perf_counter()
        out = subprocess.run(
            self.argv, input=self.conf, env=env, capture_output=True, text=True, timeout=120
        )
        dt = time.perf_counter() - t0
        if out.returncode != 0:
            raise RuntimeError(f"{self.name} {command} {i}: rc {out.returncode}: {out.stdout}")
        return dt, json.loads(out.stdout) if out.stdout.strip() else {}

    def round(
        self, command: str, ids: range, parallel: int
    ) -> tuple[list[float], float, list[Result]]:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(parallel) as ex:
            res = list(ex.map(lambda i: self.call(command, i), ids))
        return [r[0] for r in res], time.perf_counter() - t0, [r[1] for r in res]


PING = (
    "import socket,sys;s=socket.socket(socket.AF_INET,socket.SOCK_RAW,1);s.settimeout(3);"
    "s.sendto(bytes([8,0,0xe5,0xca,0x12,0x34,0,1]),(sys.argv[1],0));"
    "sys.exit(s.recvfrom(128)[0][20])"
)


def ping(src: int, results: list[Result], dst: int) -> None:
    """One ICMP echo pod src -> pod dst (both wired by the plugin under test)."""
    ip = results[dst]["ips"][0]["address"].split("/")[0]
    sh(*in_ns(pod_ns(src), sys.executable, "-c", PING, ip))


@dataclasses.dataclass
class Side:
    add_seq: list[float]
    del_seq: list[float]
    add_par_wall: float


def measure(p: Plugin, n: int, parallel: int) -> Side:
    add_seq, _, results = p.round("ADD", range(n), 1)
    ping(0, results, n - 1)
    del_seq, _, _ = p.round("DEL", range(n), 1)
    _, wall, _ = p.round("ADD", range(n), parallel)
    p.round("DEL", range(n), parallel)
    return Side(add_seq, del_seq, wall)


def median_of(p: Plugin, command: str, ids: range) -> float:
    return statistics.median(p.call(command, i)[0] for i in ids)


def inproc_probe(n: int) -> None:
    """Run inside HOST_NS: fyke's own IPAM (fsync'd JSON) and veth code, without OVS."""
    from fyke.agent.ipam import Ipam
    from fyke.agent.plumbing import VethPlumbing, host_ifname

    ipam_t: list[float] = []
    veth_t: list[float] = []
    with tempfile.TemporaryDirectory() as d:
        ipam = Ipam("10.251.0.0/24", d)
        plumbing = VethPlumbing()

        async def go() -> None:
            for i in range(n):
                t0 = time.perf_counter()
                ip = ipam.allocate(cid(i), "eth0", f"bench/pod-{i}")
                t1 = time.perf_counter()
                await plumbing.setup(
                    netns=f"/var/run/netns/{pod_ns(i)}",
                    host_ifname=host_ifname(cid(i), "eth0"),
                    pod_ifname="eth0",
                    mtu=1450,
                    address=ipam.interface(ip),
                    gateway=ipam.gateway,
                )
                ipam_t.append(t1 - t0)
                veth_t.append(time.perf_counter() - t1)
            for i in range(n):
                await plumbing.teardown(host_ifname(cid(i), "eth0"))
                ipam.release(cid(i), "eth0")

        asyncio.run(go())
        plumbing.close()
    print(json.dumps({"ipam": statistics.median(ipam_t), "veth": statistics.median(veth_t)}))


def wait_for_free_lab(limit: float = 600.0) -> None:
    deadline = time.monotonic() + limit
    while NODE_NS in sh("ip", "netns", "list").stdout.split():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{NODE_NS} still exists after {limit:.0f} s: another lab is up")
        print(f"{NODE_NS} exists (another lab); retrying in 20 s", file=sys.stderr)
        time.sleep(20)


def lab_pods(state: Path, n: int) -> tuple[float, float, float, str]:
    port = {"containerPort": 80, "protocol": "TCP", "name": "http"}
    spec = {"containers": [{"name": "c", "image": "agnhost", "ports": [port]}]}
    docs: list[Result] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": LAB_NS}}]
    for i in range(n):
        meta = {"name": f"p{i}", "namespace": LAB_NS, "labels": {"app": "bench"}}
        docs.append({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})
    f = state / "bench-pods.json"
    f.write_text(json.dumps(docs))
    notes = ""
    times = []
    for verb in ("apply", "delete"):
        t0 = time.perf_counter()
        r = sh(FYKECTL, "lab", verb, "-f", str(f), "--wait", "--state-dir", str(state), check=False)
        if r.returncode != 0:  # e.g. --wait's fixed 120 s: keep waiting here, and say so
            notes += f"`lab {verb} --wait` failed after {time.perf_counter() - t0:.0f} s: "
            notes += (r.stderr.strip().splitlines() or ["?"])[-1] + "\n"
            wait_pods(state, {f"{LAB_NS}/p{i}" for i in range(n)}, gone=verb == "delete")
        times.append(time.perf_counter() - t0)
    # delete --wait sees the API objects go; the kubelet's CNI DELs and netns removal follow.
    while "fyke-pod-" in sh("ip", "netns", "list").stdout and time.perf_counter() - t0 < 900:
        time.sleep(0.2)
    return times[0], times[1], time.perf_counter() - t0, notes


def wait_pods(state: Path, keys: set[str], gone: bool) -> None:
    from fyke.lab import objects

    async def go() -> None:
        c = objects.client(str(state / "apiserver" / "kubeconfig"))
        try:
            await objects.wait_pods(c, keys, gone=gone, timeout=1800)
        finally:
            await c.close()  # type: ignore[no-untyped-call]

    asyncio.run(go())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=100)
    ap.add_argument("--parallel", type=int, default=10)
    ap.add_argument("--lab-pods", type=int, default=200)
    ap.add_argument("--state-dir", default="/tmp/fyke-bench-lab")
    ap.add_argument("--inproc-probe", type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.inproc_probe:
        return inproc_probe(a.inproc_probe)
    n, par, state = a.pods, a.parallel, Path(a.state_dir)
    git = ("git", "-C", str(Path(__file__).parent), "describe", "--always", "--dirty")
    rev = sh(*git, check=False).stdout.strip() or "?"  # the code the lab processes load
    if not (REF_BIN / "bridge").exists():
        sys.exit("needs /usr/lib/cni/bridge: apt-get install -y containernetworking-plugins")
    wait_for_free_lab()
    shutil.rmtree(state, ignore_errors=True)  # fresh API objects and IPAM state
    tmp = Path(tempfile.mkdtemp(prefix="fyke-bench-"))
    try:
        sh(FYKECTL, "lab", "up", "--nodes", "1", "--state-dir", str(state))
        for ns in (HOST_NS, *(pod_ns(i) for i in range(n))):
            sh("ip", "netns", "del", ns, check=False)  # left by an interrupted run
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        conflist = (state / "nodes" / "node-1" / "10-fyke.conflist").read_text()
        fyke = Plugin("fyke", in_ns(NODE_NS, str(BIN / "fyke-cni")), conflist, str(BIN))
        bconf = BRIDGE_CONF.replace("DIR", f"{tmp}/host-local")
        bridge = Plugin("bridge", in_ns(HOST_NS, str(REF_BIN / "bridge")), bconf, str(REF_BIN))
        floor = median_of(Plugin("true", in_ns(NODE_NS, "true"), "", ""), "VERSION", range(20))
        shim = median_of(fyke, "VERSION", range(20))
        rtt = median_of(fyke, "STATUS", range(20))
        del0 = median_of(fyke, "DEL", range(10_000, 10_020))
        b = measure(bridge, n, par)
        f = measure(fyke, n, par)
        # The detach step again, now with n ports on br-int and their flows installed.
        fyke.round("ADD", range(n), par)
        del_n = median_of(fyke, "DEL", range(10_000, 10_020))
        mgmt = str(state / "nodes/node-1/ovs/br-int.mgmt")
        dump = sh(*in_ns(NODE_NS, "ovs-ofctl", "-O", "OpenFlow15", "dump-flows", mgmt))
        flows = dump.stdout.count("cookie=")
        fyke.round("DEL", range(n), par)
        probe = sh(*in_ns(HOST_NS, sys.executable, __file__, "--inproc-probe", str(n)))
        inproc: dict[str, float] = json.loads(probe.stdout)
        lab_up_s, lab_down_s, lab_gone_s, notes = lab_pods(state, a.lab_pods)
    finally:  # a namespace's veths go with it; host-local's state is in tmp
        sh(FYKECTL, "lab", "down", "--state-dir", str(state), check=False)
        for ns in (HOST_NS, *(pod_ns(i) for i in range(n))):
            sh("ip", "netns", "del", ns, check=False)
        shutil.rmtree(tmp, ignore_errors=True)

    fa, ba = f.add_seq, b.add_seq
    print(f"fyke {rev}; pods {n}, {par} in parallel; lab pods {a.lab_pods}")
    print(f"{'':32}{'fyke':>10}{'bridge':>10}{'fyke/bridge':>13}")
    rows = [
        ("ADD p50 ms", statistics.median(fa), statistics.median(ba)),
        ("ADD p99 ms", pct(fa, 99), pct(ba, 99)),
        ("ADD p50 ms, pods 1-10", statistics.median(fa[:10]), statistics.median(ba[:10])),
        (f"ADD p50 ms, pods {n - 9}-{n}", statistics.median(fa[-10:]), statistics.median(ba[-10:])),
        ("DEL p50 ms", statistics.median(f.del_seq), statistics.median(b.del_seq)),
    ]
    for label, x, y in rows:
        print(f"{label:32}{ms(x):>10}{ms(y):>10}{x / y:>12.2f}x")
    fp, bp = n / f.add_par_wall, n / b.add_par_wall
    print(f"{f'ADD pods/s, {par} in parallel':32}{fp:>10.1f}{bp:>10.1f}{fp / bp:>12.2f}x")
    print(
        f"lab: {a.lab_pods} pods applied --wait in {lab_up_s:.1f} s = "
        f"{a.lab_pods / lab_up_s:.2f} pods/s; delete --wait {lab_down_s:.1f} s, "
        f"torn down (pod netns gone) {lab_gone_s:.1f} s"
    )
    print(notes, end="")
    print("where a fyke ADD goes (medians, ms; each line includes the process start):")
    print(f"  ip netns exec fyke-node-1 true: {ms(floor)}")
    print(f"  fyke-cni VERSION (Python start and imports, no agent): {ms(shim)}")
    print(f"  fyke-cni STATUS (+ agent round trip, no work): {ms(rtt)}")
    print(
        f"  fyke-cni DEL of an unknown container (= ADD's first step: detach, reconcile): "
        f"{ms(del0)} with 0 pods, {ms(del_n)} with {n} pods ({flows} flows)"
    )
    print(
        f"  agent code in-process: IPAM allocate {ms(inproc['ipam'])}, veth setup "
        f"{ms(inproc['veth'])}"
    )
    # A DEL of an unknown container includes the process and the round trip, as ADD does;
    # the p50 ADD is near pod n/2, so the detach step is taken halfway between.
    rest = statistics.median(fa) - (del0 + del_n) / 2 - inproc["ipam"] - inproc["veth"]
    print(f"  rest of the p50 ADD (OVS port add, ofport wait, flow reconcile): {ms(rest)}")
    goal = statistics.median(fa) / statistics.median(ba)
    print(f"goal: fyke/bridge ADD p50 <= 1.0: {'met' if goal <= 1.0 else 'not met'} ({goal:.2f}x)")


if __name__ == "__main__":
    main()
