"""The one-node lab end to end: lab up, pods through the CNI plugin into OVS, real
packets between every pair, lab down leaving nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

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
