"""The controller's cost per cluster change: compile every policy, then cut every node's
span (datapath.span.cluster_spans), as fyke-controller does after each (debounced) change.

Clusters from bench/gen_netpol.py, pods spread round-robin over the nodes.

Usage: python bench/controller_spans.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gen_netpol
from fyke.api.load import load_objects
from fyke.datapath.span import cluster_spans
from fyke.policy.cluster import Cluster
from fyke.policy.compile import compile_policies
from fyke.policy.evaluate import Evaluator

SIZES = ((20, 25, 250, 10), (50, 40, 1000, 50))  # namespaces, pods each, policies, nodes


def main() -> int:
    for namespaces, pods, policies, nodes in SIZES:
        docs = gen_netpol.generate(gen_netpol.Shape(namespaces, pods), policies, 1)
        for i, pod in enumerate(d for d in docs if d["kind"] == "Pod"):
            pod["spec"]["nodeName"] = f"node-{i % nodes}"
        t0 = time.perf_counter()
        inv = load_objects(docs)
        ev = Evaluator(Cluster(inv.namespaces, inv.pods, inv.nodes), compile_policies(inv))
        t1 = time.perf_counter()
        spans = cluster_spans(ev, [f"node-{i}" for i in range(nodes)], {})
        t2 = time.perf_counter()
        result = {
            "pods": namespaces * pods,
            "policies": policies,
            "rules": len(ev.policies.rules),
            "nodes": nodes,
            "compile_s": round(t1 - t0, 2),
            "spans_s": round(t2 - t1, 2),
            "span_rules": sum(len(p.rules) for s in spans.values() for p in s.policies.values()),
        }
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
