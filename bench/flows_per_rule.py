"""Flows per rule: what the policy realizer installs against the conjunction ideal n+m+k+1.

A rule realized on a node is one conjunction: m flows for the local pods it protects (the
applied clause), n for its peers (one per peer address or CIDR block as the rule lists them:
each selected pod's IP, each ipBlock and what its excepts split it into), k for its
services (one per protocol/port, a port range counting the value/mask pairs it needs), and
one flow holding the action. A clause that is "any" costs nothing. The ideal for a rule set
is the sum of n+m+k+1 over the realized rules; the measure is the policy flows actually
built for the node (`datapath.policy.policy_flows`), less the flows tied to no rule (table
defaults, established bypass, isolation drops), divided by that ideal. Below 1.0 means
flows shared between rules were merged (one flow, several conjunction actions).

Cluster: bench/gen_netpol.py (NetworkPolicies with pod/namespace selectors, ipBlocks with
excepts, ports, named ports, endPort ranges), every pod on the one node measured.

Usage: python bench/flows_per_rule.py [--namespaces 10] [--pods 20] [--policies 100]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gen_netpol
from fyke.api.load import load_objects
from fyke.datapath.fields import OBJECT_MASK, cookie_object
from fyke.datapath.policy import (
    ISOLATION_OBJ,
    PIPELINE_OBJ,
    peer_networks,
    policy_flows,
    service_matches,
)
from fyke.datapath.policy_realize import realize
from fyke.policy.cluster import Cluster
from fyke.policy.compile import compile_policies
from fyke.policy.evaluate import Evaluator

SHARED = {PIPELINE_OBJ, ISOLATION_OBJ}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--namespaces", type=int, default=10)
    ap.add_argument("--pods", type=int, default=20)
    ap.add_argument("--policies", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    docs = gen_netpol.generate(
        gen_netpol.Shape(args.namespaces, args.pods), args.policies, args.seed
    )
    inv = load_objects(docs)
    ev = Evaluator(Cluster(inv.namespaces, inv.pods, inv.nodes), compile_policies(inv))
    local = {i: 3 + i for i in range(len(ev.cluster.pods))}  # every pod on this node
    t0 = time.perf_counter()
    node = realize(ev, local)
    flows = policy_flows(node, round=1)
    took = time.perf_counter() - t0
    ideal = 0
    for r in node.rules:
        n = 0 if r.peers is None else len(peer_networks(r.peers))
        k = 0 if r.services is None else len(service_matches(r.services))
        ideal += len(r.applied) + n + k + 1
    per_rule = [f for f in flows if cookie_object(f.cookie) not in SHARED]
    assert all(cookie_object(f.cookie) <= OBJECT_MASK for f in flows)
    rev = subprocess.run(
        ["git", "describe", "--always", "--dirty"], capture_output=True, text=True
    ).stdout.strip()
    print(
        f"fyke {rev}; {args.namespaces}x{args.pods} pods, {args.policies} NetworkPolicies, "
        f"seed {args.seed}; realized in {took:.2f} s"
    )
    print(f"rules realized (incl. splits): {len(node.rules)}")
    print(f"ideal sum of n+m+k+1:          {ideal}")
    print(f"policy flows built:            {len(flows)} ({len(flows) - len(per_rule)} shared)")
    ratio = len(per_rule) / ideal
    verdict = "met" if ratio <= 1.05 else "NOT met"
    print(f"flows per rule / (n+m+k+1):    {ratio:.3f}  (goal <= 1.05: {verdict})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
