"""Change -> enforced latency in the lab: from the API accepting a policy change to the
first packet that the datapath treats by the new rule.

A 2-node lab (geneve) with examples/cluster.yaml. Each round: a watcher inside the source
pod's namespace connects to the target pod's port 80 every 10 ms (50 ms timeout); the
bench applies an Antrea ClusterNetworkPolicy that Rejects that pair (so enforcement shows
as an immediate RST, not a timeout) through the API and takes the time the API returned;
the watcher reports the time of the first refused connection (CLOCK_MONOTONIC is shared
across network namespaces). Then the same for deleting the policy (first accepted
connection). Pairs: same node and across nodes. p50/p99 over ROUNDS rounds each.

Usage: python bench/policy_latency.py [--rounds 20]  (root)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fyke.lab import objects
from fyke.lab.kubelet import pod_netns

FYKECTL = str(Path(sys.executable).with_name("fykectl"))
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

WATCHER = """
import socket, sys, time
ip, want = sys.argv[1], sys.argv[2]
print("ready", flush=True)
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    s = socket.socket(); s.settimeout(0.05)
    try:
        s.connect((ip, 80)); state = "open"
    except ConnectionRefusedError:
        state = "refused"
    except OSError:
        state = "other"
    s.close()
    if state == want:
        print(time.monotonic(), flush=True); sys.exit(0)
    time.sleep(0.01)
print("timeout", flush=True)
"""


def policy(src: dict[str, Any], dst: dict[str, Any]) -> dict[str, Any]:
    def sel(p: dict[str, Any]) -> dict[str, Any]:
        return {
            "podSelector": {"matchLabels": p["metadata"]["labels"]},
            "namespaceSelector": {"matchLabels": {"ns": p["metadata"]["namespace"]}},
        }

    return {
        "apiVersion": "crd.antrea.io/v1beta1",
        "kind": "ClusterNetworkPolicy",
        "metadata": {"name": "bench-latency"},
        "spec": {
            "tier": "securityops",
            "priority": 1,
            "appliedTo": [sel(dst)],
            "ingress": [{"name": "reject", "action": "Reject", "from": [sel(src)]}],
        },
    }


def watch(src: dict[str, Any], ip: str, want: str) -> subprocess.Popen[str]:
    w = subprocess.Popen(
        ["ip", "netns", "exec", pod_netns(src), sys.executable, "-c", WATCHER, ip, want],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert w.stdout is not None and w.stdout.readline().strip() == "ready"
    return w


def seen(w: subprocess.Popen[str]) -> float:
    out, _ = w.communicate(timeout=60)
    if out.strip() == "timeout":
        raise RuntimeError("the change was not enforced within 30 s")
    return float(out.strip())


async def rounds(kubeconfig: str, src: dict[str, Any], dst: dict[str, Any], n: int) -> Any:
    c: Any = objects.client(kubeconfig)
    doc = policy(src, dst)
    ip = dst["status"]["podIP"]
    add, remove = [], []
    try:
        for _ in range(n):
            w = watch(src, ip, "refused")
            await objects.apply(c, [doc])
            t0 = time.monotonic()
            add.append(await asyncio.to_thread(seen, w) - t0)
            w = watch(src, ip, "open")
            await objects.delete(c, [doc])
            t0 = time.monotonic()
            remove.append(await asyncio.to_thread(seen, w) - t0)
    finally:
        await c.close()
    return add, remove


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))] * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument(
        "--max-revalidator",
        type=int,
        default=0,
        help="set ovs-vswitchd's other_config:max-revalidator (ms) on the nodes first",
    )
    args = ap.parse_args()
    rev = subprocess.run(
        ["git", "describe", "--always", "--dirty"], capture_output=True, text=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="fyke-bench-") as d:
        state = Path(d) / "lab"

        def lab(*a: str) -> str:
            return subprocess.run(
                [FYKECTL, "lab", *a, "--state-dir", str(state)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout

        lab("up", "--nodes", "2")
        if args.max_revalidator:
            for node in ("node-1", "node-2"):
                db = state / "nodes" / node / "ovs" / "db.sock"
                subprocess.run(
                    ["ovs-vsctl", f"--db=unix:{db}", "set", "Open_vSwitch", ".",
                     f"other_config:max-revalidator={args.max_revalidator}"],
                    check=True,
                )  # fmt: skip
        try:
            lab("apply", "-f", str(EXAMPLES / "cluster.yaml"), "--wait")
            kubeconfig = lab("kubeconfig", "--path").strip()
            pods = {
                f"{p['metadata']['namespace']}/{p['metadata']['name']}": p
                for p in json.loads(
                    subprocess.run(
                        ["kubectl", "get", "pods", "-A", "-o", "json"],
                        capture_output=True,
                        text=True,
                        check=True,
                        env={**os.environ, "KUBECONFIG": kubeconfig},
                    ).stdout
                )["items"]
            }
            dst = pods["x/a"]
            node = dst["spec"]["nodeName"]
            same = next(p for k, p in pods.items() if k != "x/a" and p["spec"]["nodeName"] == node)
            cross = next(p for p in pods.values() if p["spec"]["nodeName"] != node)
            print(f"fyke {rev}; 2-node lab; {args.rounds} rounds per line; watcher every 10 ms")
            print(f"{'change':28} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
            for label, src in (("same node", same), ("across nodes", cross)):
                add, remove = asyncio.run(rounds(kubeconfig, src, dst, args.rounds))
                for what, xs in (("Reject added", add), ("Reject removed", remove)):
                    print(
                        f"{what + ', ' + label:28} {pct(xs, 0.5):8.1f} {pct(xs, 0.99):8.1f} "
                        f"{max(xs) * 1000:8.1f}"
                    )
        finally:
            lab("down")


if __name__ == "__main__":
    main()
