"""`fykectl lab up/down/apply/delete/probe/kubeconfig`: the lab on one machine.

A lab is a state dir (default /var/lib/fyke/lab): lab.json (its topology), the API
server's data, logs, and pids.json (every process it started, stopped by PID). Nodes are
network namespaces `fyke-node-N` joined to the host by a management bridge; each runs its
own ovsdb-server and ovs-vswitchd, a fyke agent and a lab kubelet.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from fyke.lab import net
from fyke.lab.procs import Processes

DEFAULT_STATE_DIR = Path("/var/lib/fyke/lab")
API_PORT = 6443


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeSpec:
    name: str
    netns: str
    mgmt_ip: str
    host_veth: str
    pod_cidr: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LabSpec:
    nodes: tuple[NodeSpec, ...]
    encap: str
    api_server: str

    @staticmethod
    def make(nodes: int, encap: str) -> LabSpec:
        specs = []
        for i in range(1, nodes + 1):
            n = net.node_net(i)
            specs.append(
                NodeSpec(
                    name=n.name,
                    netns=n.netns,
                    mgmt_ip=n.mgmt_ip,
                    host_veth=n.host_veth,
                    pod_cidr=f"10.244.{i}.0/24",
                )
            )
        return LabSpec(
            nodes=tuple(specs), encap=encap, api_server=f"https://{net.HOST_IP}:{API_PORT}"
        )


def _say(msg: str) -> None:
    print(f"lab: {msg}", file=sys.stderr, flush=True)


def _wait(what: str, ok: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ok():
            return
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


def load_spec(state: Path) -> LabSpec:
    path = state / "lab.json"
    if not path.exists():
        raise RuntimeError(f"no lab in {state}: run `fykectl lab up` first")
    raw = json.loads(path.read_text())
    return LabSpec(
        nodes=tuple(NodeSpec(**n) for n in raw["nodes"]),
        encap=raw["encap"],
        api_server=raw["api_server"],
    )


def kubeconfig_path(state: Path) -> Path:
    return state / "apiserver" / "kubeconfig"


def start_api_server(state: Path, procs: Processes) -> None:
    data = state / "apiserver"
    data.mkdir(parents=True, exist_ok=True)
    kc = kubeconfig_path(state)
    before = kc.stat().st_mtime if kc.exists() else 0.0
    procs.start(
        "apiserver",
        [
            sys.executable,
            "-m",
            "fyke.cli.main",
            "lab",
            "apiserver",
            "--listen",
            f"{net.HOST_IP}:{API_PORT}",
            "--data-dir",
            str(data),
        ],
    )
    _wait(
        "the API server",
        lambda: kc.exists() and kc.stat().st_mtime > before and procs.alive("apiserver"),
    )


def write_state(state: Path, spec: LabSpec) -> None:
    state.mkdir(parents=True, exist_ok=True)
    (state / "lab.json").write_text(json.dumps(asdict(spec), indent=1))


def down(state: Path) -> None:
    procs = Processes(state)
    names = procs.names()
    # Kubelets first (they run CNI DEL for their pods), then agents, OVS, the API server.
    order = sorted(
        names,
        key=lambda n: (
            not n.startswith("kubelet"),
            not n.startswith("agent"),
            not n.startswith("ovs"),
            n,
        ),
    )
    for name in order:
        _say(f"stopping {name}")
        procs.stop(name, timeout=20)
    for ns in net.lab_namespaces():
        if ns.startswith("fyke-pod-"):
            net.kill_netns_processes(ns)
            net.sh("ip", "netns", "del", ns, check=False)
    if (state / "lab.json").exists():
        for node in load_spec(state).nodes:
            net.remove_node(
                net.NodeNet(
                    name=node.name, netns=node.netns, mgmt_ip=node.mgmt_ip, host_veth=node.host_veth
                )
            )
    net.remove_bridge()
    _say("down; the state dir remains")


def manifests(files: list[str]) -> list[dict[str, Any]]:
    from fyke.api.load import documents

    out: list[dict[str, Any]] = []
    for f in files:
        text = sys.stdin.read() if f == "-" else Path(f).read_text()
        out.extend(dict(d) for d in documents(text, f))
    return out


def run_async(coro: Any) -> Any:
    return asyncio.run(coro)


def dump_yaml(obj: Any) -> str:
    return yaml.safe_dump(obj, sort_keys=False)


def cni_conflist(state: Path, node: NodeSpec) -> Path:
    conf = {
        "cniVersion": "1.1.0",
        "name": "fyke",
        "plugins": [
            {
                "type": "fyke-cni",
                "agentSocket": str(state / "nodes" / node.name / "cni.sock"),
                "mtu": 1450,
            }
        ],
    }
    path = state / "nodes" / node.name / "10-fyke.conflist"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(conf, indent=1))
    return path


def start_agent(state: Path, procs: Processes, node: NodeSpec) -> None:
    """Start (or restart) a node's agent and wait until it serves CNI."""
    node_dir = state / "nodes" / node.name
    ready = node_dir / "ready"
    ready.unlink(missing_ok=True)
    name = f"agent-{node.name}"
    procs.start(
        name,
        [
            sys.executable,
            "-m",
            "fyke.agent.main",
            "--node",
            node.name,
            "--kubeconfig",
            str(kubeconfig_path(state)),
            "--state-dir",
            str(node_dir),
            "--cni-socket",
            str(node_dir / "cni.sock"),
            "--ovs-dir",
            str(node_dir / "ovs"),
            "--datapath-type",
            "netdev",
        ],
        netns=node.netns,
    )
    _wait(f"the agent on {node.name}", lambda: ready.exists() or not procs.alive(name), timeout=90)
    if not ready.exists():
        raise RuntimeError(
            f"the agent on {node.name} stopped; see " f"{state / 'logs' / f'{name}.log'}"
        )


def start_kubelet(state: Path, procs: Processes, spec: LabSpec, node: NodeSpec) -> None:
    """Start (or restart) a node's lab kubelet; the first node's also binds pods."""
    procs.start(
        f"kubelet-{node.name}",
        [
            sys.executable,
            "-m",
            "fyke.lab.kubelet",
            "--node",
            node.name,
            "--node-netns",
            node.netns,
            "--kubeconfig",
            str(kubeconfig_path(state)),
            "--cni-conf",
            str(cni_conflist(state, node)),
            "--cni-bin",
            str(Path(sys.executable).with_name("fyke-cni")),
            "--state-dir",
            str(state / "nodes" / node.name),
            "--schedule",
            ",".join(n.name for n in spec.nodes) if node is spec.nodes[0] else "",
        ],
    )


def up(state: Path, nodes: int, encap: str) -> int:
    if nodes != 1:
        raise RuntimeError("only --nodes 1 is supported so far (multi-node is issue 6)")
    procs = Processes(state)
    if procs.alive("apiserver"):
        raise RuntimeError(f"a lab is already up in {state}: `fykectl lab down` first")
    spec = LabSpec.make(nodes, encap)
    write_state(state, spec)
    try:
        _say("network: management bridge and node namespaces")
        net.ensure_bridge()
        for node in spec.nodes:
            net.add_node(
                net.NodeNet(
                    name=node.name, netns=node.netns, mgmt_ip=node.mgmt_ip, host_veth=node.host_veth
                )
            )
        _say("API server")
        start_api_server(state, procs)
        kubeconfig = str(kubeconfig_path(state))
        run_async(_register_nodes(kubeconfig, spec))
        for node in spec.nodes:
            node_dir = state / "nodes" / node.name
            node_dir.mkdir(parents=True, exist_ok=True)
            _say(f"{node.name}: ovsdb-server and ovs-vswitchd")
            ovs_dir = node_dir / "ovs"
            ovs_dir.mkdir(parents=True, exist_ok=True)
            (ovs_dir / "ready").unlink(missing_ok=True)
            procs.start(
                f"ovs-{node.name}",
                [
                    sys.executable,
                    "-m",
                    "fyke.lab.ovsnode",
                    "--dir",
                    str(ovs_dir),
                    "--netns",
                    node.netns,
                ],
            )
            ovs_ready = ovs_dir / "ready"
            _wait(f"OVS on {node.name}", ovs_ready.exists, timeout=30)
            _say(f"{node.name}: agent")
            start_agent(state, procs, node)
            _say(f"{node.name}: kubelet")
            start_kubelet(state, procs, spec, node)
    except BaseException:
        _say("start failed; cleaning up")
        down(state)
        raise
    _say(f"up: {len(spec.nodes)} node(s); KUBECONFIG={kubeconfig_path(state)}")
    return 0


async def _register_nodes(kubeconfig: str, spec: LabSpec) -> None:
    from fyke.lab import objects

    c = objects.client(kubeconfig)
    try:
        for node in spec.nodes:
            await objects.register_node(c, node.name, node.pod_cidr, node.mgmt_ip)
    finally:
        await c.close()  # type: ignore[no-untyped-call]
