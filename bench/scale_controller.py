"""Antrea's controller scale scenario, compiled by fyke: 25k namespaces, 100k pods,
75k NetworkPolicies -> internal policies, AppliedToGroups and AddressGroups with span.

The objects are those of Antrea's TestInitXLargeScaleWithSmallNamespaces: each namespace
(label app=<name>) has four pods (two app-1=scale-1, two app-2=scale-2) on random nodes
with random IPs, a default-deny-all policy and two policies that admit ingress from pods
of their own app (policyTypes Ingress and Egress). Built in memory as Kubernetes JSON, as
a reflector hands them over; timed from that JSON to the compiled groups.

The baseline, run in the same process: decoding the same objects from JSON text (what any
client must do before it can compile anything), so the ratio travels across machines.

Usage: python bench/scale_controller.py [--namespaces N]
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import json
import random
import resource
import string
import time
from typing import Any

from fyke.api.core import parse_namespace, parse_pod
from fyke.api.load import Inventory
from fyke.api.netpol import parse_network_policy
from fyke.policy.cluster import Cluster
from fyke.policy.compile import compile_policies
from fyke.policy.groups import compile_groups
from fyke.util.bulk import bulk_work


def _policy(ns: str, name: str, app: dict[str, str] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "podSelector": {"matchLabels": app} if app else {},
        "policyTypes": ["Ingress", "Egress"],
    }
    if app:
        spec["ingress"] = [{"from": [{"podSelector": {"matchLabels": app}}]}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"namespace": ns, "name": name},
        "spec": spec,
    }


def objects(namespaces: int, seed: int = 1) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    out: list[dict[str, Any]] = []
    # Random but distinct pod IPs: two pods never share an address.
    ips = iter(rnd.sample(range(1, 2**32 - 1), namespaces * 4))
    for _ in range(namespaces):
        ns = "".join(rnd.choices(string.ascii_lowercase, k=8))
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": ns, "labels": {"app": ns}},
            }
        )
        out.append(_policy(ns, "default-deny-all", None))
        out.append(_policy(ns, "np-1", {"app-1": "scale-1"}))
        out.append(_policy(ns, "np-2", {"app-2": "scale-2"}))
        for i, app in enumerate(("app-1", "app-1", "app-2", "app-2")):
            out.append(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "namespace": ns,
                        "name": f"pod{i + 1}",
                        "labels": {app: "scale-" + app[-1]},
                    },
                    "spec": {"nodeName": f"Node-{rnd.randrange(1000)}"},
                    "status": {"podIP": str(ipaddress.IPv4Address(next(ips)))},
                }
            )
    return out


def compile_all(docs: list[dict[str, Any]]) -> dict[str, float]:
    t0 = time.perf_counter()
    inv = Inventory()
    for d in docs:
        kind = d["kind"]
        if kind == "Pod":
            inv.pods.append(parse_pod(d))
        elif kind == "Namespace":
            inv.namespaces.append(parse_namespace(d))
        else:
            inv.network_policies.append(parse_network_policy(d))
    t1 = time.perf_counter()
    compiled = compile_policies(inv)
    cluster = Cluster(inv.namespaces, inv.pods, inv.nodes)
    t2 = time.perf_counter()
    state = compile_groups(cluster, compiled)
    t3 = time.perf_counter()
    return {
        "seconds: parse and validate": round(t1 - t0, 2),
        "seconds: compile rules": round(t2 - t1, 2),
        "seconds: groups and span": round(t3 - t2, 2),
        "internal policies": len(state.policies),
        "rules": sum(len(p.rules) for p in state.policies.values()),
        "AppliedToGroups": len(state.applied_to_groups),
        "AddressGroups": len(state.address_groups),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--namespaces", type=int, default=25000)
    args = ap.parse_args()
    text = json.dumps(objects(args.namespaces))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    gc.collect()
    t0 = time.perf_counter()
    docs = json.loads(text)
    t_decode = time.perf_counter() - t0

    gc.collect()
    t0 = time.perf_counter()
    with bulk_work():  # as the controller's initial sync does
        counts = compile_all(docs)
    t_compile = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux

    pods = sum(1 for d in docs if d["kind"] == "Pod")
    nps = sum(1 for d in docs if d["kind"] == "NetworkPolicy")
    print(f"namespaces {args.namespaces}, pods {pods}, NetworkPolicies {nps}")
    for k, v in counts.items():
        print(f"  {k}: {v}")
    print(f"baseline (JSON decode of the objects): {t_decode:.2f} s")
    print(
        f"fyke compile (parse+validate, rules, groups, span): {t_compile:.2f} s "
        f"= {t_compile / t_decode:.1f}x the baseline"
    )
    print(
        f"peak RSS of the process: {peak / 1024:.0f} MiB "
        f"(before decoding: {rss_before / 1024:.0f} MiB)"
    )
    print(
        f"goal: <= 10 s and <= 2048 MiB: "
        f"{'met' if t_compile <= 10 and peak / 1024 <= 2048 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
