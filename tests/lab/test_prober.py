"""The lab's pod server and prober on two plain namespaces joined by a veth: allow,
reject (refused / ICMP unreachable) and drop (timeout) are told apart."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest


def sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def pair() -> Iterator[tuple[str, str]]:
    tag = uuid.uuid4().hex[:6]
    a, b = f"fyke-pa-{tag}", f"fyke-pb-{tag}"
    procs: list[subprocess.Popen[str]] = []
    try:
        sh("ip", "netns", "add", a)
        sh("ip", "netns", "add", b)
        sh(
            "ip",
            "link",
            "add",
            f"fyke-va{tag}",
            "netns",
            a,
            "type",
            "veth",
            "peer",
            "name",
            f"fyke-vb{tag}",
            "netns",
            b,
        )
        for ns, dev, ip in (
            (a, f"fyke-va{tag}", "10.99.0.1/24"),
            (b, f"fyke-vb{tag}", "10.99.0.2/24"),
        ):
            sh("ip", "-n", ns, "addr", "add", ip, "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        server = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                b,
                sys.executable,
                "-m",
                "fyke.lab.podserver",
                "b",
                "--tcp",
                "80",
                "--udp",
                "81",
                "--tcp",
                "82",
                "--udp",
                "83",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(server)
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        # Drop (silently) what goes to 82/TCP and 83/UDP.
        sh(
            "ip",
            "netns",
            "exec",
            b,
            "nft",
            "add table inet fyke; add chain inet fyke in "
            "{ type filter hook input priority 0; }; add rule inet fyke in tcp dport 82 drop; "
            "add rule inet fyke in udp dport 83 drop",
        )
        yield a, b
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_verdicts(pair: tuple[str, str]) -> None:
    a, _ = pair
    targets = [
        {"to": "allow-tcp", "ip": "10.99.0.2", "port": 80, "protocol": "TCP"},
        {"to": "allow-udp", "ip": "10.99.0.2", "port": 81, "protocol": "UDP"},
        {"to": "reject-tcp", "ip": "10.99.0.2", "port": 90, "protocol": "TCP"},
        {"to": "reject-udp", "ip": "10.99.0.2", "port": 91, "protocol": "UDP"},
        {"to": "drop-tcp", "ip": "10.99.0.2", "port": 82, "protocol": "TCP"},
        {"to": "drop-udp", "ip": "10.99.0.2", "port": 83, "protocol": "UDP"},
    ]
    out = subprocess.run(
        ["ip", "netns", "exec", a, sys.executable, "-m", "fyke.lab.prober", "--timeout", "1"],
        input="\n".join(json.dumps(t) for t in targets),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    got = {r["to"]: r["verdict"] for r in map(json.loads, out.stdout.splitlines())}
    assert got == {t["to"]: t["to"].split("-")[0] for t in targets}
