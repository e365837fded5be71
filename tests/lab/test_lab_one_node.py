"""The one-node lab end to end: lab up, pods through the CNI plugin into OVS, real
packets between every pair, lab down leaving nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

FYKECTL = str(Path(sys.executable).with_name("fykectl"))


def _pods() -> str:
    docs = []
    for ns in "xyz":
        docs.append(
            f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}, labels: " f"{{ns: {ns}}}}}\n"
        )
        for pod in "abc":
            docs.append(
                f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {pod}, namespace: {ns}, "
                f"labels: {{pod: {pod}}}}}\nspec:\n  containers:\n  - name: c\n"
                "    image: agnhost\n    ports:\n"
                "    - {name: serve-80-tcp, containerPort: 80, protocol: TCP}\n"
                "    - {name: serve-81-udp, containerPort: 81, protocol: UDP}\n"
            )
    return "---\n".join(docs)


def fykectl(*args: str, state: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [FYKECTL, "lab", *args, "--state-dir", str(state)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if out.returncode != 0:
        logs = (
            "".join(
                f"\n--- {p.name}\n{p.read_text()[-2000:]}"
                for p in sorted((state / "logs").glob("*.log"))
            )
            if (state / "logs").exists()
            else ""
        )
        raise AssertionError(f"fykectl lab {' '.join(args)}: {out.stderr}{logs}")
    return out


def lab_pods(state: Path) -> dict[str, Any]:
    """The lab's pods by ns/name, as real kubectl with the lab's kubeconfig sees them."""
    kubeconfig = fykectl("kubeconfig", "--path", state=state).stdout.strip()
    out = subprocess.run(
        ["kubectl", "get", "pods", "-A", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "KUBECONFIG": kubeconfig},
    )
    return {
        f"{p['metadata']['namespace']}/{p['metadata']['name']}": p
        for p in json.loads(out.stdout)["items"]
    }


def _leftovers() -> tuple[list[str], list[str]]:
    ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return (
        [line.split()[0] for line in ns.splitlines() if line.startswith("fyke-")],
        [line.split(": ")[1].split("@")[0] for line in links.splitlines() if ": fyke-" in line],
    )


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if _leftovers()[0]:
        pytest.skip("another fyke lab (or a leftover) is up on this machine")
    state = tmp_path_factory.mktemp("lab")
    try:
        fykectl("up", "--nodes", "1", state=state)
        yield state
    finally:
        subprocess.run(
            [FYKECTL, "lab", "down", "--state-dir", str(state)], capture_output=True, timeout=180
        )


def test_pods_reach_each_other_through_ovs(lab: Path) -> None:
    manifest = lab / "pods.yaml"
    manifest.write_text(_pods())
    fykectl("apply", "-f", str(manifest), "--wait", state=lab)
    out = fykectl("probe", "--port", "80/TCP", "--port", "81/UDP", "-o", "json", state=lab)
    result = json.loads(out.stdout)
    assert result["ports"] == ["80/TCP", "81/UDP"]
    assert len(result["pods"]) == 9
    verdicts = [
        v for row in result["matrix"].values() for cell in row.values() for v in cell.values()
    ]
    assert len(verdicts) == 72 * 2
    assert set(verdicts) == {"allow"}


def test_kubectl_sees_running_pods(lab: Path) -> None:
    kubeconfig = fykectl("kubeconfig", "--path", state=lab).stdout.strip()
    out = subprocess.run(
        ["kubectl", "get", "pods", "-A", "-o", "json"],
        capture_output=True,
        text=True,
        env={**os.environ, "KUBECONFIG": kubeconfig},
        check=True,
    )
    pods = json.loads(out.stdout)["items"]
    assert {p["status"]["phase"] for p in pods} == {"Running"}
    ips = {p["status"]["podIP"] for p in pods}
    assert len(ips) == 9 and all(ip.startswith("10.244.1.") for ip in ips)


def _ovs(lab: Path, *args: str) -> str:
    ovs = lab / "nodes" / "node-1" / "ovs"
    return subprocess.run(
        ["ip", "netns", "exec", "fyke-node-1", *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OVS_RUNDIR": str(ovs), "OVS_DBDIR": str(ovs)},
    ).stdout


def _flows(lab: Path) -> list[str]:
    mgmt = lab / "nodes" / "node-1" / "ovs" / "br-int.mgmt"
    out = _ovs(lab, "ovs-ofctl", "-O", "OpenFlow15", "dump-flows", f"unix:{mgmt}")
    return [line for line in out.splitlines() if "cookie=" in line]


def _state(lab: Path) -> tuple[list[str], int, list[str], list[str]]:
    db = lab / "nodes" / "node-1" / "ovs" / "db.sock"
    ports = sorted(_ovs(lab, "ovs-vsctl", f"--db=unix:{db}", "list-ports", "br-int").split())
    ipam = json.loads((lab / "nodes" / "node-1" / "ipam.json").read_text())
    links = subprocess.run(
        ["ip", "-n", "fyke-node-1", "-o", "link"], capture_output=True, text=True
    ).stdout
    veths = sorted(
        line.split(": ")[1].split("@")[0]
        for line in links.splitlines()
        if ": fyke-" in line and "fyke-gw0" not in line
    )
    return ports, len(_flows(lab)), sorted(map(str, ipam.get("allocations", ipam))), veths


CONFLIST = "nodes/node-1/10-fyke.conflist"


def _cni(lab: Path, command: str, cid: str, netns: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": f"/var/run/netns/{netns}",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(Path(FYKECTL).parent),
        "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE=cyc;K8S_POD_NAME={cid}",
    }
    return subprocess.run(
        ["ip", "netns", "exec", "fyke-node-1", str(Path(FYKECTL).with_name("fyke-cni"))],
        input=(lab / CONFLIST).read_text(),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cni_cycles_leave_nothing_behind(lab: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    before = _state(lab)

    def cycle(i: int) -> None:
        ns = f"fyke-cyc-{i}"
        subprocess.run(["ip", "netns", "add", ns], check=True)
        try:
            broken = i % 10 == 0
            if broken:  # an eth0 already in the pod: ADD fails after IPAM allocated
                subprocess.run(
                    [
                        "ip",
                        "-n",
                        ns,
                        "link",
                        "add",
                        "eth0",
                        "type",
                        "veth",
                        "peer",
                        "name",
                        "eth0p",
                    ],
                    check=True,
                )
            add = _cni(lab, "ADD", f"cyc{i}", ns)
            if broken:
                assert add.returncode != 0 and '"code"' in add.stdout, add.stdout
            else:
                assert add.returncode == 0, add.stdout + add.stderr
                assert json.loads(add.stdout)["ips"][0]["address"].startswith("10.244.1.")
            dele = _cni(lab, "DEL", f"cyc{i}", ns)
            assert dele.returncode == 0, dele.stdout + dele.stderr
        finally:
            subprocess.run(["ip", "netns", "del", ns], check=False)

    with ThreadPoolExecutor(20) as pool:
        list(pool.map(cycle, range(100)))
    assert _state(lab) == before


def test_agent_restart_keeps_a_tcp_stream(lab: Path) -> None:
    from fyke.lab.kubelet import pod_netns
    from fyke.lab.procs import Processes
    from fyke.lab.up import load_spec, start_agent

    pods = lab_pods(lab)
    server_pod, client_pod = pods["x/b"], pods["x/a"]
    echo = (
        "import socket\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, "
        "socket.SO_REUSEADDR, 1); s.bind(('0.0.0.0', 9000)); s.listen(1)\n"
        "c,_=s.accept()\nwhile (d:=c.recv(100)): c.sendall(d)\n"
    )
    talk = (
        "import socket,sys,time\n"
        # the echo server may not listen yet: try again for a while when refused
        "for _ in range(50):\n try: c=socket.create_connection((sys.argv[1], 9000), 3); break\n"
        " except ConnectionRefusedError: time.sleep(0.1)\n"
        "c.settimeout(5)\nprint('connected', flush=True)\nn=0\n"
        "end=time.time()+float(sys.argv[2])\n"
        "while time.time()<end:\n c.sendall(b'x'); assert c.recv(10)==b'x'; n+=1;"
        " time.sleep(0.02)\nprint('ok', n, flush=True)\n"
    )
    server = subprocess.Popen(
        ["ip", "netns", "exec", pod_netns(server_pod), sys.executable, "-c", echo]
    )
    try:
        time_to_run = "8"
        client = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                pod_netns(client_pod),
                sys.executable,
                "-c",
                talk,
                server_pod["status"]["podIP"],
                time_to_run,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert client.stdout is not None
        import time

        for _ in range(50):
            if client.poll() is not None:
                break
            line = client.stdout.readline()
            if line.startswith("connected"):
                break
            time.sleep(0.1)
        round_before = json.loads((lab / "nodes" / "node-1" / "ready").read_text())["round"]
        procs = Processes(lab)
        procs.stop("agent-node-1")
        spec = load_spec(lab)
        start_agent(lab, procs, spec.nodes[0], spec.encap)
        out, _ = client.communicate(timeout=30)
        assert client.returncode == 0 and out.startswith("ok"), out
        round_after = json.loads((lab / "nodes" / "node-1" / "ready").read_text())["round"]
        assert round_after != round_before
        # Every installed flow is of the new round: nothing stale is left.
        rounds = {int(line.split("cookie=")[1].split(",")[0], 16) >> 48 for line in _flows(lab)}
        assert rounds == {round_after}
    finally:
        server.kill()
        server.wait()


def test_deleting_a_pod_undoes_its_network(lab: Path) -> None:
    from fyke.lab.kubelet import pod_netns

    kubeconfig = fykectl("kubeconfig", "--path", state=lab).stdout.strip()
    env = {**os.environ, "KUBECONFIG": kubeconfig}
    pod = json.loads(
        subprocess.run(
            ["kubectl", "get", "pod", "c", "-n", "z", "-o", "json"],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout
    )
    ip = pod["status"]["podIP"]
    one = lab / "one.yaml"
    one.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: c, namespace: z}\n")
    fykectl("delete", "-f", str(one), "--wait", state=lab)
    import time

    ipam = lab / "nodes" / "node-1" / "ipam.json"
    for _ in range(100):
        gone = pod_netns(pod) not in _leftovers()[0]
        if gone and ip not in ipam.read_text():
            break
        time.sleep(0.1)
    assert pod_netns(pod) not in _leftovers()[0]
    assert ip not in ipam.read_text()


def test_kubelet_restart_collects_stale_attachments(lab: Path) -> None:
    """An attachment no pod owns (a runtime that lost track of it) is removed by the CNI
    GC the lab kubelet runs when it starts, as a runtime does after a restart."""
    from fyke.lab.procs import Processes
    from fyke.lab.up import load_spec, start_kubelet

    subprocess.run(["ip", "netns", "add", "fyke-stale"], check=True)
    try:
        add = _cni(lab, "ADD", "stale0", "fyke-stale")
        assert add.returncode == 0, add.stdout
        ip = json.loads(add.stdout)["ips"][0]["address"].split("/")[0]
        ipam = lab / "nodes" / "node-1" / "ipam.json"
        assert ip in ipam.read_text()
        procs = Processes(lab)
        procs.stop("kubelet-node-1")
        spec = load_spec(lab)
        start_kubelet(lab, procs, spec.nodes[0])
        import time

        for _ in range(100):
            if ip not in ipam.read_text():
                break
            time.sleep(0.1)
        assert ip not in ipam.read_text()
        assert len(lab_pods(lab)) == 8  # the real pods are all still there (z/c was deleted)
    finally:
        subprocess.run(["ip", "netns", "del", "fyke-stale"], check=False)


def test_lab_down_leaves_nothing(lab: Path) -> None:
    pids = json.loads((lab / "pids.json").read_text()).values()
    fykectl("down", state=lab)
    namespaces, links = _leftovers()
    assert namespaces == [] and links == []
    for pid in pids:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        )
    assert (lab / "lab.json").exists()  # the state dir remains
