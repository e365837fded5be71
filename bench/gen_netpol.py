"""Deterministic generator of a NetworkPolicy-only cluster for differential benchmarks.

Emits Namespaces, plain Pods (no owners, so every pod is its own endpoint in every tool) and
Kubernetes NetworkPolicies as one multi-document YAML file.

The default output stays inside the subset where fyke and network-config-analyzer (NCA) agree
on Kubernetes semantics:
  * ipBlocks never contain a pod IP (NCA ignores pod IPs when matching ipBlocks);
    `--pod-ipblocks` adds ipBlocks that do cover pod IPs, to measure that divergence;
  * a podSelector next to a namespaceSelector never uses Exists/DoesNotExist: NCA 2.1.0
    evaluates those two operators in the policy's own namespace only, dropping every pod of the
    other selected namespaces. The same key is written as In/NotIn over all of its values,
    which is equivalent here; `--cross-ns-exists` keeps the original operators;
  * policyTypes is emitted as [Ingress, Egress] (NCA rejects the other order);
  * no `egress: []` (NCA isolates egress on it even without policyTypes);
  * no `ingress`/`egress` field whose direction is missing from an explicit policyTypes
    (NCA rejects it; Kubernetes ignores it);
  * label values are never numeric-looking strings (NCA rejects a quoted "1" as not a string).
"""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Doc = dict[str, Any]

APPS = ("web", "api", "db", "cache", "worker")
TIERS = ("frontend", "backend", "data")
ROLES = ("primary", "replica", "canary")
VERSIONS = ("v1", "v2")
TEAMS = ("red", "blue", "green")
ENVS = ("prod", "staging", "dev")
PROTOCOLS = ("TCP", "UDP", "SCTP")

# Named ports per app. The same name maps to different numbers (and for `http` a different
# protocol) on different apps, so named-port resolution must happen per destination pod.
APP_PORTS: dict[str, list[tuple[str, int, str]]] = {
    "web": [("http", 8080, "TCP"), ("metrics", 9090, "TCP")],
    "api": [("http", 8000, "TCP"), ("grpc", 50051, "TCP"), ("metrics", 9091, "TCP")],
    "db": [("sql", 5432, "TCP"), ("metrics", 9187, "TCP")],
    "cache": [("redis", 6379, "TCP"), ("dns", 53, "UDP")],
    "worker": [("dns", 5353, "UDP"), ("sig", 3868, "SCTP"), ("http", 8081, "UDP")],
}
PORT_NAMES = ("http", "metrics", "grpc", "sql", "redis", "dns", "sig")
NAMED_DEFAULT_PROTO = {"dns": "UDP", "sig": "SCTP"}
COMMON_PORTS = (22, 53, 80, 443, 3868, 5353, 5432, 6379, 8000, 8080, 8081, 9090, 50051)

POD_NET = "10.1"  # pod IPs are 10.1.<ns>.<10+pod>; nothing else in 10.1.0.0/16 is used
EXTERNAL_BLOCKS: list[Doc] = [
    {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]},
    {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]},
    {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16", "10.2.0.0/16"]},
    {"cidr": "10.2.7.0/24"},
    {"cidr": "172.16.0.0/12", "except": ["172.16.4.0/24"]},
    {"cidr": "192.168.10.0/24"},
]


def pod_ip(ns_idx: int, pod_idx: int) -> str:
    return f"{POD_NET}.{ns_idx}.{10 + pod_idx}"


def _namespace(idx: int, rng: random.Random) -> Doc:
    name = f"ns-{idx:02d}"
    labels = {
        "kubernetes.io/metadata.name": name,  # set by real API servers; emitted for all tools
        "team": rng.choice(TEAMS),
        "env": rng.choice(ENVS),
    }
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def _pod(ns_idx: int, pod_idx: int, rng: random.Random) -> Doc:
    app = rng.choice(APPS)
    labels = {"app": app, "tier": rng.choice(TIERS), "version": rng.choice(VERSIONS)}
    if rng.random() < 0.7:  # sometimes absent, so Exists/DoesNotExist selectors matter
        labels["role"] = rng.choice(ROLES)
    ports = [p for p in APP_PORTS[app] if rng.random() < 0.75] or APP_PORTS[app][:1]
    port_docs: list[Doc] = [{"name": n, "containerPort": c, "protocol": pr} for n, c, pr in ports]
    containers: list[Doc] = [{"name": "main", "image": "registry.local/app:1", "ports": port_docs}]
    if rng.random() < 0.3:  # a sidecar with an unnamed port: must not affect named resolution
        containers.append(
            {
                "name": "side",
                "image": "registry.local/side:1",
                "ports": [{"containerPort": 15000 + pod_idx}],
            }
        )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{app}-{pod_idx:02d}",
            "namespace": f"ns-{ns_idx:02d}",
            "labels": labels,
        },
        "spec": {"containers": containers},
        "status": {"podIP": pod_ip(ns_idx, pod_idx)},
    }


@dataclass(frozen=True)
class Shape:
    namespaces: int
    pods: int  # per namespace
    pod_ipblocks: bool = False  # ipBlocks may contain pod IPs (NCA divergence)
    cross_ns_exists: bool = False  # Exists/DoesNotExist beside a namespaceSelector (NCA bug)


def _pod_selector(rng: random.Random, cross_ns_in: bool = False) -> Doc:
    """A pod selector; cross_ns_in: rewrite (Does)Exists as an equivalent NotIn/In."""
    kind = rng.random()
    if kind < 0.15:
        return {}
    if kind < 0.6:
        sel: Doc = {"matchLabels": {"app": rng.choice(APPS)}}
        if rng.random() < 0.3:
            sel["matchLabels"]["tier"] = rng.choice(TIERS)
        return sel
    exprs: list[Doc] = []
    for _ in range(rng.randint(1, 2)):
        op = rng.choice(("In", "NotIn", "Exists", "DoesNotExist"))
        key, values = rng.choice((("role", ROLES), ("tier", TIERS), ("version", VERSIONS)))
        expr: Doc = {"key": key, "operator": op}
        if op in ("In", "NotIn"):
            expr["values"] = sorted(rng.sample(values, rng.randint(1, 2)))
        elif cross_ns_in:  # every pod carries a value from `values` when it has the key
            expr = {
                "key": key,
                "operator": "In" if op == "Exists" else "NotIn",
                "values": sorted(values),
            }
        exprs.append(expr)
    sel = {"matchExpressions": exprs}
    if rng.random() < 0.3:
        sel["matchLabels"] = {"app": rng.choice(APPS)}
    return sel


def _ns_selector(rng: random.Random, n_ns: int) -> Doc:
    kind = rng.random()
    if kind < 0.2:
        return {}
    if kind < 0.5:
        return {"matchLabels": {"team": rng.choice(TEAMS)}}
    if kind < 0.75:
        name = f"ns-{rng.randrange(n_ns):02d}"
        return {"matchLabels": {"kubernetes.io/metadata.name": name}}
    return {
        "matchExpressions": [
            {
                "key": "env",
                "operator": rng.choice(("In", "NotIn")),
                "values": sorted(rng.sample(ENVS, rng.randint(1, 2))),
            }
        ]
    }


def _ip_block(rng: random.Random, shape: Shape) -> Doc:
    if shape.pod_ipblocks and rng.random() < 0.6:
        n_ns = shape.namespaces
        ns = rng.randrange(n_ns)
        choice = rng.randrange(3)
        if choice == 0:  # a whole namespace's pods
            return {"cidr": f"{POD_NET}.{ns}.0/24"}
        if choice == 1:  # the namespace minus its first pods
            return {"cidr": f"{POD_NET}.{ns}.0/24", "except": [f"{POD_NET}.{ns}.8/29"]}
        last = 10 + rng.randrange(shape.pods)  # every pod except one namespace and one extra pod
        return {
            "cidr": f"{POD_NET}.0.0/16",
            "except": [f"{POD_NET}.{ns}.0/24", f"{POD_NET}.{(ns + 1) % n_ns}.{last}/32"],
        }
    return dict(rng.choice(EXTERNAL_BLOCKS))


def _peer(rng: random.Random, shape: Shape) -> Doc:
    kind = rng.random()
    if kind < 0.35:
        return {"podSelector": _pod_selector(rng)}
    if kind < 0.6:
        return {"namespaceSelector": _ns_selector(rng, shape.namespaces)}
    if kind < 0.85:  # both in one peer: AND of the two selectors
        ns_sel = _ns_selector(rng, shape.namespaces)
        return {
            "namespaceSelector": ns_sel,
            "podSelector": _pod_selector(rng, not shape.cross_ns_exists),
        }
    return {"ipBlock": _ip_block(rng, shape)}


def _port(rng: random.Random) -> Doc:
    kind = rng.random()
    if kind < 0.3:
        port: Doc = {"port": rng.choice(COMMON_PORTS)}
        if rng.random() < 0.7:  # protocol omitted means TCP
            port["protocol"] = rng.choice(PROTOCOLS)
        return port
    if kind < 0.6:
        name = rng.choice(PORT_NAMES)
        # Mostly the protocol the name is declared with; sometimes another one (no match).
        proto = NAMED_DEFAULT_PROTO.get(name, "TCP")
        if rng.random() < 0.2:
            proto = rng.choice(PROTOCOLS)
        return {"port": name, "protocol": proto}
    if kind < 0.85:
        start = rng.choice((1000, 5000, 8000, 9000, 30000))
        return {
            "port": start,
            "endPort": start + rng.choice((0, 9, 99, 999, 5000)),
            "protocol": rng.choice(PROTOCOLS),
        }
    return {"protocol": rng.choice(PROTOCOLS)}  # every port of one protocol


def _rule(rng: random.Random, key: str, shape: Shape) -> Doc:
    rule: Doc = {}
    if rng.random() < 0.85:  # otherwise no peers: everything
        rule[key] = [_peer(rng, shape) for _ in range(rng.randint(1, 3))]
    if rng.random() < 0.75:  # otherwise no ports: every port and protocol
        rule["ports"] = [_port(rng) for _ in range(rng.randint(1, 3))]
    return rule


def _policy(idx: int, rng: random.Random, shape: Shape) -> Doc:
    spec: Doc = {"podSelector": _pod_selector(rng)}
    ingress = rng.random() < 0.75
    egress = not ingress or rng.random() < 0.4
    explicit_types = rng.random() < 0.8 or not ingress
    if explicit_types:
        spec["policyTypes"] = [t for t, on in (("Ingress", ingress), ("Egress", egress)) if on]
    # An isolating policy may have no rules (deny all) for a direction it names explicitly.
    if ingress and (not explicit_types or rng.random() < 0.9):
        spec["ingress"] = [_rule(rng, "from", shape) for _ in range(rng.randint(1, 3))]
    if egress and (not explicit_types or rng.random() < 0.9):
        spec["egress"] = [_rule(rng, "to", shape) for _ in range(rng.randint(1, 3))]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": f"np-{idx:04d}",
            "namespace": f"ns-{rng.randrange(shape.namespaces):02d}",
        },
        "spec": spec,
    }


def generate(shape: Shape, policies: int, seed: int = 1) -> list[Doc]:
    """Return the cluster as a list of Kubernetes objects; same arguments, same objects."""
    if not 1 <= shape.namespaces <= 256 or not 1 <= shape.pods <= 240:
        raise ValueError("supports 1..256 namespaces and 1..240 pods per namespace")
    rng = random.Random(seed)
    docs = [_namespace(i, rng) for i in range(shape.namespaces)]
    docs += [_pod(n, p, rng) for n in range(shape.namespaces) for p in range(shape.pods)]
    docs += [_policy(i, rng, shape) for i in range(policies)]
    return docs


def write(docs: list[Doc], path: Path) -> None:
    with path.open("w") as fh:
        yaml.safe_dump_all(docs, fh, sort_keys=False, default_flow_style=None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--namespaces", type=int, default=10)
    ap.add_argument("--pods", type=int, default=20, help="pods per namespace")
    ap.add_argument("--policies", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--pod-ipblocks",
        action="store_true",
        help="also emit ipBlocks that contain pod IPs (NCA ignores those)",
    )
    ap.add_argument(
        "--cross-ns-exists",
        action="store_true",
        help="keep Exists/DoesNotExist in podSelectors beside a namespaceSelector (NCA bug)",
    )
    ap.add_argument("-o", "--out", type=Path, help="output file (default: stdout)")
    args = ap.parse_args(argv)
    shape = Shape(args.namespaces, args.pods, args.pod_ipblocks, args.cross_ns_exists)
    docs = generate(shape, args.policies, args.seed)
    if args.out:
        write(docs, args.out)
    else:
        yaml.safe_dump_all(docs, sys.stdout, sort_keys=False, default_flow_style=None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
