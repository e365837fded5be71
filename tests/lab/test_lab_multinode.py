"""The multi-node lab in each encap mode: 9 pods over 3 nodes reach each other, the
underlay carries what the mode says (Geneve UDP 6081, VXLAN UDP 4789, plain routed IP),
and nodes leave and join at runtime without leaving anything stale."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fyke.lab.kubelet import pod_netns
from tests.lab.test_lab_one_node import _leftovers, _pods, fykectl, lab_pods

ENCAP_PORT = {"geneve": 6081, "vxlan": 4789}
POD_MTU = {"geneve": 1450, "vxlan": 1450, "none": 1500}
FABRIC = ("ip", "netns", "exec", "fyke-fabric")


@pytest.fixture(scope="module", params=["geneve", "vxlan", "none"])
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if _leftovers()[0]:
        pytest.skip("another fyke lab (or a leftover) is up on this machine")
    state = tmp_path_factory.mktemp(f"lab-{request.param}")
    try:
        fykectl("up", "--nodes", "3", "--encap", request.param, state=state)
        pods = state / "pods.yaml"
        pods.write_text(_pods())
        fykectl("apply", "-f", str(pods), "--wait", state=state)
        yield state
    finally:
        fykectl("down", state=state)
        assert _leftovers() == ([], [])


def _encap(lab: Path) -> str:
    encap: str = json.loads((lab / "lab.json").read_text())["encap"]
    return encap


def _probe(lab: Path) -> dict[str, dict[str, dict[str, str]]]:
    out = fykectl("probe", "-o", "json", "--port", "80/TCP", "--port", "81/UDP", state=lab)
    matrix: dict[str, dict[str, dict[str, str]]] = json.loads(out.stdout)["matrix"]
    return matrix


def _not_allowed(matrix: dict[str, dict[str, dict[str, str]]]) -> list[str]:
    return [
        f"{s} -> {d} {p}: {v}"
        for s, row in matrix.items()
        for d, cells in row.items()
        for p, v in cells.items()
        if v != "allow"
    ]


def _node_sh(lab: Path, node: str, *args: str) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", f"fyke-{node}", *args], capture_output=True, text=True, check=True
    ).stdout


def _flows(lab: Path, node: str) -> str:
    mgmt = lab / "nodes" / node / "ovs" / "br-int.mgmt"
    return _node_sh(lab, node, "ovs-ofctl", "-O", "OpenFlow15", "dump-flows", f"unix:{mgmt}")


def _node_ip(lab: Path, node: str) -> str:
    spec = json.loads((lab / "lab.json").read_text())
    ip: str = next(n["underlay_ip"] for n in spec["nodes"] if n["name"] == node)
    return ip


def _pod_cidr(lab: Path, node: str) -> str:
    spec = json.loads((lab / "lab.json").read_text())
    cidr: str = next(n["pod_cidr"] for n in spec["nodes"] if n["name"] == node)
    return cidr


def test_pods_spread_over_the_nodes(lab: Path) -> None:
    pods = lab_pods(lab)
    assert len(pods) == 9
    per_node: dict[str, int] = {}
    for p in pods.values():
        assert p["status"]["phase"] == "Running"
        per_node[p["spec"]["nodeName"]] = per_node.get(p["spec"]["nodeName"], 0) + 1
    assert per_node == {"node-1": 3, "node-2": 3, "node-3": 3}


def test_all_72_pairs_reachable(lab: Path) -> None:
    matrix = _probe(lab)
    assert sum(len(row) for row in matrix.values()) == 72
    assert _not_allowed(matrix) == []


def test_pod_mtu_leaves_room_for_the_encapsulation(lab: Path) -> None:
    pod = next(iter(lab_pods(lab).values()))
    ns = pod_netns(pod)
    link = json.loads(
        subprocess.run(
            ["ip", "-n", ns, "-j", "link", "show", "eth0"], capture_output=True, text=True
        ).stdout
    )
    assert link[0]["mtu"] == POD_MTU[_encap(lab)]


def test_underlay_carries_what_the_mode_says(lab: Path) -> None:
    """tcpdump on the fabric bridge while pods on different nodes talk."""
    encap = _encap(lab)
    cap = subprocess.Popen(
        [*FABRIC, "tcpdump", "-i", "fyke-fabric0", "-n", "-l", "-c", "40", "ip"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        time.sleep(1)  # tcpdump attaches
        _probe(lab)
        out, _ = cap.communicate(timeout=20)
    finally:
        if cap.poll() is None:
            cap.kill()
            cap.wait()
    lines = [line for line in out.splitlines() if " IP " in line]
    assert len(lines) == 40, out
    nodes = {f"192.168.77.{i}" for i in (11, 12, 13)}
    for line in lines:
        src, dst = line.split(" IP ")[1].split(":")[0].split(" > ")
        if encap == "none":
            # pod addresses on the wire, TCP to 80 or UDP to 81 and the answers
            assert src.startswith("10.244.") and dst.startswith("10.244."), line
            assert "UDP" not in line or ".81:" in line or ".81 >" in line, line
        else:
            assert src.rsplit(".", 1)[0] in nodes and dst.rsplit(".", 1)[0] in nodes, line
            assert dst.endswith(f".{ENCAP_PORT[encap]}"), line


def test_node_removal_leaves_nothing_stale(lab: Path) -> None:
    encap = _encap(lab)
    gone_ip, gone_cidr = _node_ip(lab, "node-2"), _pod_cidr(lab, "node-2")
    before = _flows(lab, "node-1")
    if encap == "none":
        assert gone_cidr in _node_sh(lab, "node-1", "ip", "route")
    else:
        assert f"set_field:{gone_ip}->tun_dst" in before
    fykectl("node", "remove", "node-2", state=lab)
    assert "fyke-node-2" not in _leftovers()[0]
    assert [n["name"] for n in json.loads((lab / "lab.json").read_text())["nodes"]] == [
        "node-1",
        "node-3",
    ]
    # The Node and its pods are gone from the API (the scheduler collects orphaned pods).
    deadline = time.monotonic() + 30
    while any(p["spec"]["nodeName"] == "node-2" for p in lab_pods(lab).values()):
        assert time.monotonic() < deadline, "pods of node-2 remain"
        time.sleep(0.3)
    for node in ("node-1", "node-3"):
        deadline = time.monotonic() + 30
        while True:
            flows = _flows(lab, node)
            routes = _node_sh(lab, node, "ip", "route")
            if gone_ip not in flows and gone_cidr not in flows and gone_cidr not in routes:
                break
            assert time.monotonic() < deadline, f"{node} still has node-2:\n{flows}\n{routes}"
            time.sleep(0.3)
        if encap != "none":
            ctl = lab / "nodes" / node / "ovs" / "ovs-vswitchd.ctl"
            neigh = _node_sh(lab, node, "ovs-appctl", "-t", str(ctl), "tnl/neigh/show")
            assert gone_ip not in neigh
    matrix = _probe(lab)
    assert sum(len(row) for row in matrix.values()) == 30  # 6 pods
    assert _not_allowed(matrix) == []


def test_node_join_at_runtime(lab: Path) -> None:
    name = fykectl("node", "add", state=lab).stdout.strip()
    assert name == "node-4"
    extra = lab / "extra.yaml"
    extra.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: d, namespace: x, labels: {pod: d}}\n"
        "spec:\n  nodeName: node-4\n  containers:\n  - name: c\n    image: agnhost\n"
        "    ports:\n    - {containerPort: 80, protocol: TCP}\n"
        "    - {containerPort: 81, protocol: UDP}\n"
    )
    fykectl("apply", "-f", str(extra), "--wait", state=lab)
    assert lab_pods(lab)["x/d"]["status"]["podIP"].startswith("10.244.4.")
    matrix = _probe(lab)
    assert sum(len(row) for row in matrix.values()) == 42  # 7 pods
    assert _not_allowed(matrix) == []
