"""Multi-node lab: cross-node vs same-node throughput per encap mode, and lab start-up time.

For each mode (geneve, vxlan, none), one run:
- `fykectl lab up --nodes 3 --encap MODE` (timed), then `fykectl lab apply -f <30 pods>
  --wait` (timed: API, scheduling over 3 nodes, netns, CNI ADD, pod server, status).
- iperf3 (TCP, one stream, SECONDS each) from a pod on node-1 and from a pod on node-2 to a
  server pod on node-1, alternating same-node and cross-node ROUNDS times; the median
  receiver throughput of each, and the ratio cross-node / same-node in the same run.
- `fykectl lab down`.

Usage: python bench/multinode.py [--seconds 5] [--rounds 3] [--pods 30]  (root; iperf3)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fyke.lab.kubelet import pod_netns

FYKECTL = str(Path(sys.executable).with_name("fykectl"))
MODES = ("geneve", "vxlan", "none")


def sh(*args: str, timeout: float = 300) -> str:
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: exit {r.returncode}: {r.stderr.strip()[-2000:]}")
    return r.stdout


def lab(state: Path, *args: str) -> str:
    return sh(FYKECTL, "lab", *args, "--state-dir", str(state))


def pods_yaml(n: int) -> str:
    docs = ["apiVersion: v1\nkind: Namespace\nmetadata: {name: bench}\n"]
    for i in range(n):
        docs.append(
            f"apiVersion: v1\nkind: Pod\nmetadata: {{name: p{i:02d}, namespace: bench}}\n"
            "spec:\n  containers:\n  - {name: c, image: agnhost, ports: [{containerPort: 80}]}\n"
        )
    return "---\n".join(docs)


def iperf(client_ns: str, server_ip: str, seconds: int) -> float:
    out = sh(
        "ip",
        "netns",
        "exec",
        client_ns,
        "iperf3",
        "-J",
        "-c",
        server_ip,
        "-t",
        str(seconds),
        timeout=seconds + 60,
    )
    bps: float = json.loads(out)["end"]["sum_received"]["bits_per_second"]
    return bps / 1e9


def one_mode(mode: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    state = tmp / f"lab-{mode}"
    t0 = time.monotonic()
    lab(state, "up", "--nodes", "3", "--encap", mode)
    up_s = time.monotonic() - t0
    try:
        manifest = tmp / "pods.yaml"
        manifest.write_text(pods_yaml(args.pods))
        t0 = time.monotonic()
        lab(state, "apply", "-f", str(manifest), "--wait")
        pods_s = time.monotonic() - t0
        kubeconfig = lab(state, "kubeconfig", "--path").strip()
        items = json.loads(
            subprocess.run(
                ["kubectl", "get", "pods", "-n", "bench", "-o", "json"],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "KUBECONFIG": kubeconfig},
            ).stdout
        )["items"]
        on = {n: [p for p in items if p["spec"]["nodeName"] == n] for n in ("node-1", "node-2")}
        server, same, cross = on["node-1"][0], on["node-1"][1], on["node-2"][0]
        srv = subprocess.Popen(
            ["ip", "netns", "exec", pod_netns(server), "iperf3", "-s"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(0.5)
            ip = server["status"]["podIP"]
            same_g, cross_g = [], []
            for _ in range(args.rounds):
                same_g.append(iperf(pod_netns(same), ip, args.seconds))
                cross_g.append(iperf(pod_netns(cross), ip, args.seconds))
        finally:
            srv.terminate()
            srv.wait()
    finally:
        lab(state, "down")
    s, c = statistics.median(same_g), statistics.median(cross_g)
    return {"mode": mode, "up_s": up_s, "pods_s": pods_s, "same": s, "cross": c, "ratio": c / s}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pods", type=int, default=30)
    ap.add_argument("--modes", default=",".join(MODES))
    args = ap.parse_args()
    rev = subprocess.run(
        ["git", "describe", "--always", "--dirty"], capture_output=True, text=True
    ).stdout.strip()
    print(f"fyke {rev}; 3 nodes, {args.pods} pods; iperf3 TCP {args.seconds} s x {args.rounds}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="fyke-bench-") as d:
        for mode in args.modes.split(","):
            rows.append(one_mode(mode, args, Path(d)))
    print(
        f"{'encap':8} {'lab up s':>9} {'30 pods s':>10} {'same Gbit/s':>12} "
        f"{'cross Gbit/s':>13} {'cross/same':>11}"
    )
    for r in rows:
        print(
            f"{r['mode']:8} {r['up_s']:9.1f} {r['pods_s']:10.1f} {r['same']:12.2f} "
            f"{r['cross']:13.2f} {r['ratio']:10.2f}x"
        )


if __name__ == "__main__":
    main()
