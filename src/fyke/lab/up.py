"""`fykectl lab up/down/apply/delete/probe/kubeconfig`: the lab on one machine.

A lab is a state dir (default /var/lib/fyke/lab): lab.json (its topology), the API
server's data, logs, and pids.json (every process it started, stopped by PID). Nodes are
network namespaces `fyke-node-N`, joined to the host by a management bridge (API access)
and to each other by an underlay fabric namespace (fyke.lab.net); each runs its own
ovsdb-server and ovs-vswitchd, a fyke agent and a lab kubelet. One fyke-controller serves
the agents their policy spans (on the management bridge, port CONTROLLER_PORT); one lab
scheduler binds pods that name no node. `lab node add/remove` changes the node set of a running lab.
"""

from __future__ import annotations

import asyncio
import dataclasses
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
CONTROLLER_PORT = 10349
MAX_NODES = 16  # each node costs two OVS daemons, an agent and a kubelet (~150 MB)
ENCAPS = ("geneve", "vxlan", "none")


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeSpec:
    name: str
    netns: str
    mgmt_ip: str
    host_veth: str
    underlay_ip: str
    fabric_veth: str
    pod_cidr: str

    @staticmethod
    def make(index: int) -> NodeSpec:
        n = net.node_net(index)
        return NodeSpec(
            name=n.name,
            netns=n.netns,
            mgmt_ip=n.mgmt_ip,
            host_veth=n.host_veth,
            underlay_ip=n.underlay_ip,
            fabric_veth=n.fabric_veth,
            pod_cidr=f"10.244.{index}.0/24",
        )

    @property
    def index(self) -> int:
        return int(self.name.rsplit("-", 1)[1])

    @property
    def net(self) -> net.NodeNet:
        return net.node_net(self.index)


@dataclass(frozen=True, slots=True, kw_only=True)
class LabSpec:
    nodes: tuple[NodeSpec, ...]
    encap: str
    api_server: str

    @staticmethod
    def make(nodes: int, encap: str) -> LabSpec:
        return LabSpec(
            nodes=tuple(NodeSpec.make(i) for i in range(1, nodes + 1)),
            encap=encap,
            api_server=f"https://{net.HOST_IP}:{API_PORT}",
        )

    def node(self, name: str) -> NodeSpec:
        for n in self.nodes:
            if n.name == name:
                return n
        raise RuntimeError(
            f"no lab node {name!r} (nodes: {', '.join(n.name for n in self.nodes) or 'none'})"
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
    # Nodes are rebuilt from their names, so a lab.json of an older layout still loads.
    return LabSpec(
        nodes=tuple(
            dataclasses.replace(
                NodeSpec.make(int(n["name"].rsplit("-", 1)[1])), pod_cidr=n["pod_cidr"]
            )
            for n in raw["nodes"]
        ),
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


def controller_dir(state: Path) -> Path:
    return state / "controller"


def start_controller(state: Path, procs: Processes) -> None:
    """Start (or restart) the fyke-controller and wait until it serves spans."""
    data = controller_dir(state)
    data.mkdir(parents=True, exist_ok=True)
    endpoint = data / "endpoint.json"
    endpoint.unlink(missing_ok=True)
    procs.start(
        "controller",
        [
            sys.executable,
            "-m",
            "fyke.controller.main",
            "--kubeconfig",
            str(kubeconfig_path(state)),
            "--state-dir",
            str(data),
            "--listen",
            f"{net.HOST_IP}:{CONTROLLER_PORT}",
        ],
    )
    _wait("the controller", lambda: endpoint.exists() or not procs.alive("controller"), timeout=60)
    if not endpoint.exists():
        raise RuntimeError(f"the controller stopped; see {state / 'logs' / 'controller.log'}")


def _token(state: Path, who: str, path: Path) -> Path:
    """A controller token for `who` (a node's name, or ADMIN), where only root reads it."""
    from fyke.controller.auth import ensure_secret, node_token

    secret = ensure_secret(controller_dir(state) / "node-token-secret")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(node_token(secret, who))
    return path


def _node_token(state: Path, node: NodeSpec) -> Path:
    return _token(state, node.name, state / "nodes" / node.name / "controller-token")


def admin_token(state: Path) -> Path:
    """What `fykectl lab explain` shows the controller."""
    from fyke.controller.auth import ADMIN

    path = controller_dir(state) / "admin-token"
    return path if path.exists() else _token(state, ADMIN, path)


def controller_url() -> str:
    return f"https://{net.HOST_IP}:{CONTROLLER_PORT}"


def write_state(state: Path, spec: LabSpec) -> None:
    state.mkdir(parents=True, exist_ok=True)
    (state / "lab.json").write_text(json.dumps(asdict(spec), indent=1))


def down(state: Path) -> None:
    procs = Processes(state)
    names = procs.names()
    # Kubelets first (they run CNI DEL for their pods), then agents, OVS, the controller,
    # the scheduler and last the API server.
    order = sorted(
        names,
        key=lambda n: (
            not n.startswith("kubelet"),
            not n.startswith("agent"),
            not n.startswith("ovs"),
            n == "apiserver",
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
            _remove_node_net(node)
    # Nodes a failed `lab node add` may have left out of lab.json.
    for ns in net.lab_namespaces():
        if ns.startswith("fyke-node-") and ns.rsplit("-", 1)[1].isdigit():
            _remove_node_net(NodeSpec.make(int(ns.rsplit("-", 1)[1])))
    net.remove_fabric()
    net.remove_bridge()
    _say("down; the state dir remains")


def _remove_node_net(node: NodeSpec) -> None:
    net.kill_netns_processes(node.netns)
    net.remove_node(node.net)


def manifests(files: list[str]) -> list[dict[str, Any]]:
    """The objects in files ('-' is stdin; a directory gives its .yaml, .yml and .json
    files in sorted order), as `policy matrix` reads them."""
    from fyke.api.load import documents, read_sources

    out: list[dict[str, Any]] = []
    for source, text in read_sources(files):
        out.extend(dict(d) for d in documents(text, source))
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
            }
        ],
    }
    path = state / "nodes" / node.name / "10-fyke.conflist"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(conf, indent=1))
    return path


def start_agent(state: Path, procs: Processes, node: NodeSpec, encap: str) -> None:
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
            "--encap",
            encap,
            "--controller",
            controller_url(),
            "--controller-token-file",
            str(_node_token(state, node)),
            "--controller-ca",
            str(controller_dir(state) / "ca.crt"),
        ],
        netns=node.netns,
    )
    _wait(f"the agent on {node.name}", lambda: ready.exists() or not procs.alive(name), timeout=90)
    if not ready.exists():
        raise RuntimeError(
            f"the agent on {node.name} stopped; see " f"{state / 'logs' / f'{name}.log'}"
        )


def start_kubelet(state: Path, procs: Processes, node: NodeSpec) -> None:
    """Start (or restart) a node's lab kubelet."""
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
        ],
    )


def start_scheduler(state: Path, procs: Processes) -> None:
    procs.start(
        "scheduler",
        [
            sys.executable,
            "-m",
            "fyke.lab.scheduler",
            "--kubeconfig",
            str(kubeconfig_path(state)),
        ],
    )


def start_node(state: Path, procs: Processes, spec: LabSpec, node: NodeSpec) -> None:
    """Namespace, networks, Node object, OVS, agent and kubelet of one node."""
    _say(f"{node.name}: namespace, management and underlay links")
    net.add_node(node.net)
    net.add_underlay(node.net)
    node_dir = state / "nodes" / node.name
    node_dir.mkdir(parents=True, exist_ok=True)
    _say(f"{node.name}: ovsdb-server and ovs-vswitchd")
    ovs_dir = node_dir / "ovs"
    ovs_dir.mkdir(parents=True, exist_ok=True)
    (ovs_dir / "ready").unlink(missing_ok=True)
    procs.start(
        f"ovs-{node.name}",
        [sys.executable, "-m", "fyke.lab.ovsnode", "--dir", str(ovs_dir), "--netns", node.netns],
    )
    _wait(f"OVS on {node.name}", (ovs_dir / "ready").exists, timeout=30)
    net.underlay_address(node.net, spec.encap, f"unix:{ovs_dir / 'db.sock'}")
    run_async(_register_nodes(str(kubeconfig_path(state)), [node]))
    _say(f"{node.name}: agent ({spec.encap})")
    start_agent(state, procs, node, spec.encap)
    _say(f"{node.name}: kubelet")
    start_kubelet(state, procs, node)


def stop_node(state: Path, procs: Processes, node: NodeSpec) -> None:
    """The reverse of start_node; the Node object goes too (its pods are then deleted by
    the lab scheduler, as Kubernetes' pod garbage collector does)."""
    for what in ("kubelet", "agent", "ovs"):
        name = f"{what}-{node.name}"
        if name in procs.names():
            _say(f"stopping {name}")
            procs.stop(name, timeout=20)
    run_async(_unregister_node(str(kubeconfig_path(state)), node.name))
    _remove_node_net(node)


def up(state: Path, nodes: int, encap: str) -> int:
    if not 1 <= nodes <= MAX_NODES:
        raise RuntimeError(f"--nodes {nodes}: a lab has 1 to {MAX_NODES} nodes")
    if encap not in ENCAPS:
        raise RuntimeError(f"--encap {encap!r}: one of {', '.join(ENCAPS)}")
    procs = Processes(state)
    if procs.alive("apiserver"):
        raise RuntimeError(f"a lab is already up in {state}: `fykectl lab down` first")
    spec = LabSpec.make(nodes, encap)
    write_state(state, spec)
    try:
        _say("network: management bridge and underlay fabric")
        net.ensure_bridge()
        net.ensure_fabric()
        _say("API server, controller and scheduler")
        start_api_server(state, procs)
        start_controller(state, procs)
        start_scheduler(state, procs)
        for node in spec.nodes:
            start_node(state, procs, spec, node)
    except BaseException:
        _say("start failed; cleaning up")
        down(state)
        raise
    _say(f"up: {len(spec.nodes)} node(s), encap {encap}; KUBECONFIG={kubeconfig_path(state)}")
    return 0


def node_add(state: Path) -> str:
    """Start one more node (the next free index) in a running lab; returns its name."""
    procs = Processes(state)
    spec = load_spec(state)
    if not procs.alive("apiserver"):
        raise RuntimeError(f"the lab in {state} is not up")
    if len(spec.nodes) >= MAX_NODES:
        raise RuntimeError(f"the lab has {len(spec.nodes)} nodes, the most it can have")
    index = max((n.index for n in spec.nodes), default=0) + 1
    node = NodeSpec.make(index)
    try:
        start_node(state, procs, spec, node)
    except BaseException:
        _say(f"{node.name} failed to start; removing it")
        stop_node(state, procs, node)
        raise
    write_state(state, dataclasses.replace(spec, nodes=(*spec.nodes, node)))
    _say(f"{node.name} joined")
    return node.name


def node_remove(state: Path, name: str) -> None:
    procs = Processes(state)
    spec = load_spec(state)
    node = spec.node(name)
    if len(spec.nodes) == 1:
        raise RuntimeError(f"{name} is the lab's only node: use `fykectl lab down`")
    stop_node(state, procs, node)
    write_state(state, dataclasses.replace(spec, nodes=tuple(n for n in spec.nodes if n != node)))
    _say(f"{name} removed")


async def _register_nodes(kubeconfig: str, nodes: list[NodeSpec]) -> None:
    from fyke.lab import objects

    c = objects.client(kubeconfig)
    try:
        for node in nodes:
            await objects.register_node(c, node.name, node.pod_cidr, node.underlay_ip)
    finally:
        await c.close()  # type: ignore[no-untyped-call]


async def _unregister_node(kubeconfig: str, name: str) -> None:
    from lightkube import ApiError

    from fyke.kube import resources
    from fyke.lab import objects

    c: Any = objects.client(kubeconfig)
    try:
        await c.delete(resources.NODE.resource(), name)
    except ApiError as e:
        if e.status.code != 404:
            raise
    finally:
        await c.close()
