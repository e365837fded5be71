"""iperf3 through the fyke pipeline with 1,000 policy rules vs a NORMAL bridge.

Issue 5's goal: throughput with 1k rules / throughput of a NORMAL bridge >= 0.9, in one run.

One node namespace (fyke-b-iperf) runs its own OVS (userspace datapath, br-int) with the
gateway port and two pods, client 10.10.0.2 and server 10.10.0.3 (a netns each, veth,
checksum offload off as LAB-NOTES requires for TCP through the userspace datapath). The
same two pods and ports take turns on three flow tables:

  normal    one flow, `actions=NORMAL`
  pipeline  fyke's pod pipeline (pod_connectivity: SpoofGuard, conntrack, ARP responder,
            L3/L2 forwarding, the policy tables' defaults), no policy
  rules     the pipeline plus ~1,000 realized NetworkPolicy rules that all apply to both
            pods: half admit the real peer pod on other ports, half port 5201 from or to
            other addresses, so at every priority two of a conjunction's three clauses
            match and none completes, until the one rule that admits client -> server:5201,
            which has the lowest priority of its band (egress at the client, ingress at
            the server). Established packets skip the policy tables (conntrack), as in
            Antrea.

Each table is installed once by fyke (FlowSync) and dumped; a configuration is switched
with `ovs-ofctl --bundle replace-flows` of its dump, then the datapath's flows and
conntrack are flushed, so every run starts cold. Rounds rotate the order of the three.
One iperf3 TCP stream per run; the receiver's throughput; medians per configuration.
After each run: the datapath's megaflows (`dpctl/dump-flows`) and upcalls
(`dpif-netdev/pmd-stats-show`), which show whether the rule count still matters after a
connection's first packets. Enforcement is checked first: under `rules` a connection to
the server's port 5202 must fail (it succeeds under the other two), and afterwards the
only conjunction that counted packets must be the allowing rule's.

Usage: python bench/iperf_rules.py [--rules 1000] [--seconds 5] [--rounds 5]  (root; OVS,
iperf3)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchnode import BRIDGE, BenchNode, BenchPod, finish, sh
from fyke.api.load import load_objects
from fyke.datapath import tables
from fyke.datapath.flow import Flow
from fyke.datapath.pod import pod_connectivity
from fyke.datapath.policy import policy_flows
from fyke.datapath.policy_realize import realize
from fyke.ovs.reconcile import FlowSync
from fyke.policy.cluster import Cluster
from fyke.policy.compile import compile_policies
from fyke.policy.evaluate import Evaluator

GOAL = 0.9
NAMESPACE = "bench"
GW_IP, PREFIX = "10.10.0.1", 24
CLIENT = ("client", "10.10.0.2", "02:00:0a:0a:00:02")
SERVER = ("server", "10.10.0.3", "02:00:0a:0a:00:03")
IPERF_PORT = 5201
BLOCKED_PORT = 5202  # a second server; only `rules` must refuse it
CONFIGS = ("normal", "pipeline", "rules")
Doc = dict[str, Any]


# --- the cluster and its policies -------------------------------------------------------


def _pod(name: str, ip: str) -> Doc:
    ports = [{"name": "iperf", "containerPort": IPERF_PORT, "protocol": "TCP"}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": name}},
        "spec": {"containers": [{"name": "main", "image": "iperf3", "ports": ports}]},
        "status": {"podIP": ip},
    }


def _other(i: int, k: int) -> Doc:
    """An address that is neither pod (10.200.0.0/16 is not used by anything)."""
    n = 2 * i + k
    return {"ipBlock": {"cidr": f"10.200.{n // 250}.{1 + n % 250}/32"}}


def _decoy(i: int) -> Doc:
    """Rule pair i (one ingress, one egress rule), applied to both pods. Even i: the real
    peer pod, on a port nobody uses; odd i: port 5201, from or to other addresses."""
    real = i % 2 == 0
    ports = [{"protocol": "TCP", "port": 10000 + i}] + (
        [] if real else [{"protocol": "TCP", "port": IPERF_PORT}]
    )

    def peers(pod: str) -> list[Doc]:
        extra = [{"podSelector": {"matchLabels": {"app": pod}}}] if real else []
        return [_other(i, 0), _other(i, 1), *extra]

    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"decoy-{i:04d}", "namespace": NAMESPACE},
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": peers("client"), "ports": ports}],
            "egress": [{"to": peers("server"), "ports": ports}],
        },
    }


def _allow_iperf() -> Doc:
    """The one rule pair that admits client -> server:5201; its name sorts last, so it has
    the lowest priority of the NetworkPolicy band in both directions."""
    port = [{"protocol": "TCP", "port": IPERF_PORT}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "zz-allow-iperf", "namespace": NAMESPACE},
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {"from": [{"podSelector": {"matchLabels": {"app": "client"}}}], "ports": port}
            ],
            "egress": [
                {"to": [{"podSelector": {"matchLabels": {"app": "server"}}}], "ports": port}
            ],
        },
    }


def cluster_docs(rules: int) -> list[Doc]:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    docs = [ns, _pod(CLIENT[0], CLIENT[1]), _pod(SERVER[0], SERVER[1])]
    if rules:
        docs += [_decoy(i) for i in range(rules // 2 - 1)] + [_allow_iperf()]
    return docs


def node_flows(node: BenchNode, rules: int) -> tuple[int, list[Flow]]:
    """The node's flows as the agent builds them: (realized rules, flows)."""
    assert node.gateway is not None
    inv = load_objects(cluster_docs(rules))
    ev = Evaluator(Cluster(inv.namespaces, inv.pods, inv.nodes), compile_policies(inv))
    local = {ev.cluster.index[f"{NAMESPACE}/{p}"]: node.pods[p].port.ofport for p in node.pods}
    realized = realize(ev, local)
    pods = [p.port for p in node.pods.values()]
    flows = pod_connectivity(node.gateway, pods, round=1) + policy_flows(realized, round=1)
    return len(realized.rules), flows


# --- measuring ------------------------------------------------------------------------


def iperf(client: BenchPod, seconds: int, port: int = IPERF_PORT) -> float:
    """Gbit/s received by the server over one TCP stream."""
    out = sh(
        *("ip", "netns", "exec", client.netns, "iperf3", "-J", "-c", SERVER[1]),
        *("-p", str(port), "-t", str(seconds)),
        timeout=seconds + 60,
    )
    return float(json.loads(out)["end"]["sum_received"]["bits_per_second"]) / 1e9


def connects(client: BenchPod, port: int) -> bool:
    """Whether a TCP connection to the server's `port` is established within 1 s."""
    r = subprocess.run(
        [
            *("ip", "netns", "exec", client.netns, "iperf3", "-c", SERVER[1]),
            *("-p", str(port), "-t", "1", "--connect-timeout", "1000"),
        ],
        capture_output=True,
        timeout=30,
    )
    return r.returncode == 0


PMD_STATS = {
    "packets": "packets received",
    "emc_hits": "emc hits",
    "smc_hits": "smc hits",
    "megaflow_hits": "megaflow hits",
    "upcalls": "miss with success upcall",
    "failed_upcalls": "miss with failed upcall",
}


def pmd_stats(node: BenchNode) -> dict[str, int]:
    """dpif-netdev counters summed over every thread (AF_PACKET ports are polled by the
    main thread)."""
    text = node.appctl("dpif-netdev/pmd-stats-show")
    out = {}
    for key, label in PMD_STATS.items():
        out[key] = sum(int(v) for v in re.findall(rf"{re.escape(label)}: *(\d+)", text))
    return out


def megaflows(node: BenchNode) -> list[str]:
    """The datapath's flows (megaflows), one line each."""
    lines = node.appctl("dpctl/dump-flows").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("flow-dump from")]


def winning_conjunctions(node: BenchNode) -> list[str]:
    """The conj_id (action) flows of the rule tables that counted packets."""
    hits = []
    for table in (tables.EgressRule, tables.IngressRule):
        for line in node.ofctl("dump-flows", BRIDGE, f"table={table.id}").splitlines():
            m = re.search(r"n_packets=(\d+)", line)
            if "conj_id=" in line and m and int(m.group(1)) > 0:
                prio = re.search(r"priority=(\d+)", line)
                conj = re.search(r"conj_id=(\d+)", line)
                assert prio and conj
                hits.append(f"{table.name} priority {prio.group(1)} conj_id {conj.group(1)}")
    return hits


def band_bottom(node: BenchNode) -> list[str]:
    """The lowest conj_id flow priority in each rule table (the allowing rule should be it)."""
    out = []
    for table in (tables.EgressRule, tables.IngressRule):
        prios = [
            int(m.group(1))
            for line in node.ofctl("dump-flows", BRIDGE, f"table={table.id}").splitlines()
            if "conj_id=" in line and (m := re.search(r"priority=(\d+)", line))
        ]
        out.append(f"{table.name}: {len(prios)} rules, priorities {max(prios)}..{min(prios)}")
    return out


def switch_to(node: BenchNode, dump_file: Path, reference: list[str]) -> None:
    """Install a configuration's flows atomically and start the datapath cold."""
    node.ofctl("--bundle", "replace-flows", BRIDGE, str(dump_file))
    assert node.dump_flows() == reference, f"{dump_file.name}: flows differ after replace"
    node.appctl("revalidator/purge")
    node.appctl("dpctl/del-flows")
    node.appctl("dpctl/flush-conntrack")
    node.appctl("dpif-netdev/pmd-stats-clear")


# --- the run --------------------------------------------------------------------------


async def prepare(node: BenchNode, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Install each configuration once (fyke's through FlowSync), keep its dump."""
    assert node.conn is not None
    info: dict[str, Any] = {"files": {}, "reference": {}, "flows": {}, "rules": {}}
    sync = FlowSync(node.conn)
    for config in CONFIGS:
        if config == "normal":
            (tmp / "normal.in").write_text("priority=0 actions=NORMAL\n")
            node.ofctl("--bundle", "replace-flows", BRIDGE, str(tmp / "normal.in"))
            sync.reset()  # FlowSync must look again after somebody else changed the flows
            info["rules"][config] = 0
        else:
            rules, flows = node_flows(node, args.rules if config == "rules" else 0)
            await sync.sync(flows)
            info["rules"][config] = rules
        dump = node.dump_flows()
        path = tmp / f"{config}.flows"
        path.write_text("\n".join(dump) + "\n")
        info["files"][config], info["reference"][config] = path, dump
        info["flows"][config] = len(dump)
    return info


async def bench(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    gbits: dict[str, list[float]] = {c: [] for c in CONFIGS}
    stats: dict[str, list[dict[str, Any]]] = {c: [] for c in CONFIGS}
    enforcement: dict[str, dict[str, bool]] = {}
    servers: list[subprocess.Popen[bytes]] = []
    async with BenchNode("iperf") as node:
        try:
            await node.add_gateway(GW_IP, PREFIX)
            client = await node.add_pod(CLIENT[0], CLIENT[1], PREFIX, CLIENT[2], GW_IP)
            server = await node.add_pod(SERVER[0], SERVER[1], PREFIX, SERVER[2], GW_IP)
            info = await prepare(node, args, tmp)
            for port in (IPERF_PORT, BLOCKED_PORT):
                # `ip netns exec` execs iperf3: the PID we hold is iperf3's own.
                servers.append(
                    subprocess.Popen(
                        ["ip", "netns", "exec", server.netns, "iperf3", "-s", "-p", str(port)],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
            await asyncio.sleep(0.5)
            for config in CONFIGS:
                switch_to(node, info["files"][config], info["reference"][config])
                enforcement[config] = {
                    str(IPERF_PORT): connects(client, IPERF_PORT),
                    str(BLOCKED_PORT): connects(client, BLOCKED_PORT),
                }
            expected = {
                c: {str(IPERF_PORT): True, str(BLOCKED_PORT): c != "rules"} for c in CONFIGS
            }
            if enforcement != expected:
                raise AssertionError(f"connections {enforcement}, expected {expected}")
            for rnd in range(args.rounds):
                order = CONFIGS[rnd % 3 :] + CONFIGS[: rnd % 3]
                for config in order:
                    switch_to(node, info["files"][config], info["reference"][config])
                    gbits[config].append(iperf(client, args.seconds))
                    flows = megaflows(node)
                    stats[config].append({"megaflows": len(flows), **pmd_stats(node)})
                    if rnd == 0:
                        stats[config][-1]["megaflow_dump"] = flows
            # Which conjunctions count packets under `rules`: the allowing rule's only.
            switch_to(node, info["files"]["rules"], info["reference"]["rules"])
            iperf(client, 1)
            winners = winning_conjunctions(node)
            bottom = band_bottom(node)
        finally:
            for proc in servers:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    med = {c: statistics.median(v) for c, v in gbits.items()}
    ratio = med["rules"] / med["normal"]
    return {
        "rules_realized": info["rules"]["rules"],
        "flows": info["flows"],
        "seconds": args.seconds,
        "rounds": args.rounds,
        "gbit_s": {c: round(v, 3) for c, v in med.items()},
        "gbit_s_runs": {c: [round(x, 3) for x in v] for c, v in gbits.items()},
        "ratio_rules_to_normal": round(ratio, 3),
        "ratio_pipeline_to_normal": round(med["pipeline"] / med["normal"], 3),
        "ratio_rules_to_pipeline": round(med["rules"] / med["pipeline"], 3),
        "goal": GOAL,
        "goal_met": ratio >= GOAL,
        "enforcement_connects": enforcement,
        "conjunctions_with_packets": winners,
        "rule_tables": bottom,
        "datapath": stats,
    }


def report(r: dict[str, Any]) -> None:
    print(
        f"{r['rules_realized']} rules realized; flows: {r['flows']}; iperf3 TCP "
        f"{r['seconds']} s x {r['rounds']} per configuration, rotating"
    )
    for c in CONFIGS:
        print(f"  {c:9s} {r['gbit_s'][c]:6.3f} Gbit/s (median)  runs {r['gbit_s_runs'][c]}")
    verdict = "met" if r["goal_met"] else "NOT met"
    print(
        f"rules/normal {r['ratio_rules_to_normal']} (goal >= {GOAL}: {verdict}); "
        f"pipeline/normal {r['ratio_pipeline_to_normal']}; "
        f"rules/pipeline {r['ratio_rules_to_pipeline']}"
    )
    print(f"connects (port -> established): {r['enforcement_connects']}")
    print(f"rule tables: {r['rule_tables']}")
    print(f"conjunctions that counted packets: {r['conjunctions_with_packets']}")
    for c in CONFIGS:
        last = [{k: v for k, v in s.items() if k != "megaflow_dump"} for s in r["datapath"][c]]
        print(f"datapath after each {c} run: {last}")
    for c in CONFIGS:
        print(f"megaflows after the first {c} run:")
        for line in r["datapath"][c][0]["megaflow_dump"]:
            print(f"  {line}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rules", type=int, default=1000, help="realized rules (both directions)")
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="print only the JSON result")
    args = ap.parse_args()
    return finish(bench, args, report)


if __name__ == "__main__":
    raise SystemExit(main())
