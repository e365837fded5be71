"""Enforcement in the lab equals the offline engine: `fykectl lab probe` (real packets
through OVS) against `fykectl policy matrix` on the same objects."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.test_lab_one_node import FYKECTL, _leftovers, fykectl, lab_pods

EXAMPLES = Path(__file__).parents[2] / "examples"
PORTS = ["80/TCP", "81/TCP", "80/UDP"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if _leftovers()[0]:
        pytest.skip("another fyke lab (or a leftover) is up on this machine")
    state = tmp_path_factory.mktemp("lab")
    try:
        # Two nodes: the scheduler spreads the pods, so pairs on one node and pairs
        # across the Geneve tunnel are both checked.
        fykectl("up", "--nodes", "2", state=state)
        fykectl("apply", "-f", str(EXAMPLES / "cluster.yaml"), "--wait", state=state)
        yield state
    finally:
        subprocess.run(
            [FYKECTL, "lab", "down", "--state-dir", str(state)], capture_output=True, timeout=180
        )


TCP = ["80/TCP", "81/TCP"]


def _expected(files: list[Path], ports: list[str] = PORTS) -> dict[str, dict[str, dict[str, str]]]:
    args = [FYKECTL, "policy", "matrix", "-o", "json"]
    for f in files:
        args += ["-f", str(f)]
    for p in ports:
        args += ["--port", p]
    matrix: dict[str, dict[str, dict[str, str]]] = json.loads(
        subprocess.run(args, capture_output=True, text=True, check=True).stdout
    )["matrix"]
    return matrix


def _probe(lab: Path, ports: list[str] = PORTS) -> dict[str, dict[str, dict[str, str]]]:
    args = ["probe", "-o", "json", "--timeout", "1"]
    for p in ports:
        args += ["--port", p]
    matrix: dict[str, dict[str, dict[str, str]]] = json.loads(fykectl(*args, state=lab).stdout)[
        "matrix"
    ]
    return matrix


def _converge(lab: Path, want: dict[str, dict[str, dict[str, str]]]) -> None:
    got: dict[str, dict[str, dict[str, str]]] = {}
    for _ in range(10):
        got = _probe(lab)
        if got == want:
            return
        time.sleep(1)
    wrong = [
        f"{s} -> {d} {p}: matrix {want[s][d][p]}, probe {got[s][d][p]}"
        for s in want
        for d in want[s]
        for p in want[s][d]
        if got.get(s, {}).get(d, {}).get(p) != want[s][d][p]
    ]
    raise AssertionError(f"{len(wrong)} differences:\n" + "\n".join(wrong[:30]))


def test_no_policy_everything_allowed(lab: Path) -> None:
    _converge(lab, _expected([EXAMPLES / "cluster.yaml"]))


def test_examples_enforced_as_the_matrix_says(lab: Path) -> None:
    fykectl("apply", "-f", str(EXAMPLES / "policies.yaml"), state=lab)
    _converge(lab, _expected([EXAMPLES / "cluster.yaml", EXAMPLES / "policies.yaml"]))
    fykectl("delete", "-f", str(EXAMPLES / "policies.yaml"), state=lab)
    _converge(lab, _expected([EXAMPLES / "cluster.yaml"]))


POLICY_SETS = {
    "anp-pass-np-banp": """
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: x-guard}
spec:
  priority: 5
  subject: {namespaces: {matchLabels: {ns: x}}}
  ingress:
  - {name: delegate-y, action: Pass, from: [{namespaces: {matchLabels: {ns: y}}}]}
  - name: no-z-81
    action: Deny
    from: [{namespaces: {matchLabels: {ns: z}}}]
    ports: [{portNumber: {protocol: TCP, port: 81}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: y-on-80, namespace: x}
spec:
  podSelector: {}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {ns: y}}}]
    ports: [{port: 80}]
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {namespaces: {}}
  ingress:
  - {name: deny-z, action: Deny, from: [{namespaces: {matchLabels: {ns: z}}}]}
""",
    "cnp-v1alpha2": """
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: y-admin}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {ns: y}}}
  ingress:
  - name: z-web
    action: Accept
    from: [{namespaces: {matchLabels: {ns: z}}}]
    protocols: [{tcp: {destinationPort: {number: 80}}}]
  - {name: rest, action: Deny, from: [{namespaces: {}}]}
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: z-baseline}
spec:
  tier: Baseline
  priority: 5
  subject: {namespaces: {matchLabels: {ns: z}}}
  ingress:
  - name: no-x-udp
    action: Deny
    from: [{namespaces: {matchLabels: {ns: x}}}]
    protocols: [{destinationNamedPort: serve-80-udp}]
""",
    "antrea-tiers-groups": """
apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: sec-pass-x}
spec:
  priority: 1
  tier: securityops
  appliedTo: [{namespaceSelector: {matchLabels: {ns: y}}}]
  ingress:
  - {action: Pass, from: [{namespaceSelector: {matchLabels: {ns: x}}}]}
  - {action: Drop, from: [{namespaceSelector: {matchLabels: {ns: x}}}]}
---
apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: app-reject-y}
spec:
  priority: 5
  tier: application
  appliedTo: [{namespaceSelector: {matchLabels: {ns: y}}}]
  ingress:
  - {action: Reject}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: x-named-web, namespace: y}
spec:
  podSelector: {}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {ns: x}}}]
    ports: [{port: serve-80-tcp}]
---
apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: base-z}
spec:
  priority: 1
  tier: baseline
  appliedTo: [{namespaceSelector: {matchLabels: {ns: z}}}]
  ingress:
  - action: Drop
    from: [{namespaceSelector: {matchLabels: {ns: x}}}]
    ports: [{protocol: TCP, port: 80, endPort: 81}]
---
apiVersion: crd.antrea.io/v1beta1
kind: ClusterGroup
metadata: {name: ns-z}
spec:
  namespaceSelector: {matchLabels: {ns: z}}
---
apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: x-no-udp-to-z}
spec:
  priority: 3
  tier: emergency
  appliedTo: [{namespaceSelector: {matchLabels: {ns: x}}}]
  egress:
  - action: Reject
    to: [{group: ns-z}]
    ports: [{protocol: UDP, port: 80}]
""",
    # Antrea source ports: probes come from the ephemeral ports (32768-60999), so a
    # rule on exactly those matches them and a rule on 1000-2000 never does.
    "antrea-source-ports": """
apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: source-ports}
spec:
  priority: 1
  appliedTo: [{namespaceSelector: {matchLabels: {ns: y}}}]
  ingress:
  - action: Drop
    from: [{namespaceSelector: {matchLabels: {ns: z}}}]
    ports: [{protocol: TCP, sourcePort: 1000, sourceEndPort: 2000}]
  - action: Reject
    from: [{namespaceSelector: {matchLabels: {ns: x}}}]
    ports: [{protocol: UDP, port: 80, sourcePort: 32768, sourceEndPort: 60999}]
""",
    # A group by serviceReference: the controller reflects Services too.
    "antrea-service-group": """
apiVersion: v1
kind: Service
metadata: {name: web-b, namespace: y}
spec:
  selector: {pod: b}
  ports: [{port: 80, protocol: TCP}]
---
apiVersion: crd.antrea.io/v1beta1
kind: ClusterGroup
metadata: {name: web-b-pods}
spec:
  serviceReference: {name: web-b, namespace: y}
---
apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: web-b-not-to-x}
spec:
  priority: 2
  appliedTo: [{namespaceSelector: {matchLabels: {ns: x}}}]
  ingress:
  - action: Drop
    from: [{group: web-b-pods}]
""",
}


@pytest.mark.parametrize("name", sorted(POLICY_SETS))
def test_policy_kinds_enforced_as_the_matrix_says(lab: Path, name: str) -> None:
    path = lab / f"{name}.yaml"
    path.write_text(POLICY_SETS[name])
    fykectl("apply", "-f", str(path), state=lab)
    try:
        _converge(lab, _expected([EXAMPLES / "cluster.yaml", path]))
    finally:
        fykectl("delete", "-f", str(path), state=lab)


ECHO = (
    "import socket\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR,"
    " 1); s.bind(('0.0.0.0', 9000)); s.listen(4)\n"
    "while True:\n c,_=s.accept()\n while (d:=c.recv(100)): c.sendall(d)\n c.close()\n"
)
TALK = (
    "import socket,sys,time\nc=socket.create_connection((sys.argv[1], 9000), 3)\n"
    "c.settimeout(3)\nprint('connected', flush=True)\nn=0\nend=time.time()+6\n"
    "while time.time()<end:\n c.sendall(b'x'); assert c.recv(10)==b'x'; n+=1;"
    " time.sleep(0.02)\nprint('ok', n, flush=True)\n"
)
DENY_B = """
apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: isolate-x-b}
spec:
  priority: 1
  tier: emergency
  appliedTo: [{podSelector: {matchLabels: {pod: b}}, namespaceSelector: {matchLabels: {ns: x}}}]
  ingress:
  - action: Drop
"""


def test_established_connections_survive_a_new_drop(lab: Path) -> None:
    """Documented behaviour (as Antrea): a rule change applies to new connections;
    established ones keep going (conntrack lets established traffic skip the rule
    tables)."""
    import sys

    from fyke.lab.kubelet import pod_netns

    pods = lab_pods(lab)
    b_ip = pods["x/b"]["status"]["podIP"]
    server = subprocess.Popen(
        ["ip", "netns", "exec", pod_netns(pods["x/b"]), sys.executable, "-c", ECHO]
    )
    policy = lab / "deny-b.yaml"
    policy.write_text(DENY_B)
    try:
        time.sleep(0.3)
        client = subprocess.Popen(
            ["ip", "netns", "exec", pod_netns(pods["x/a"]), sys.executable, "-c", TALK, b_ip],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert client.stdout is not None
        assert client.stdout.readline().startswith("connected")
        fykectl("apply", "-f", str(policy), state=lab)
        time.sleep(2)  # realized by now; the stream is still running
        late = subprocess.run(
            ["ip", "netns", "exec", pod_netns(pods["x/c"]), sys.executable, "-c", TALK, b_ip],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert late.returncode != 0  # a new connection is dropped
        out, _ = client.communicate(timeout=30)
        assert client.returncode == 0 and out.startswith("ok"), out
    finally:
        server.kill()
        server.wait()
        fykectl("delete", "-f", str(policy), state=lab)


AUDITED = """\
apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: audited}
spec:
  tier: securityops
  priority: 1
  appliedTo:
  - namespaceSelector: {matchLabels: {ns: x}}
    podSelector: {matchLabels: {pod: a}}
  ingress:
  - name: drop-from-z
    action: Drop
    enableLogging: true
    logLabel: blocked
    from: [{namespaceSelector: {matchLabels: {ns: z}}}]
  - name: reject-from-y
    action: Reject
    enableLogging: true
    from: [{namespaceSelector: {matchLabels: {ns: y}}}]
  - name: allow-rest
    action: Allow
    enableLogging: true
"""


def test_audit_log_names_the_rule_of_every_logged_verdict(lab: Path) -> None:
    policy = lab / "audited.yaml"
    policy.write_text(AUDITED)
    logs = sorted(lab.glob("nodes/*/networkpolicy.log"))
    sizes = {p: p.stat().st_size for p in logs}
    fykectl("apply", "-f", str(policy), state=lab)
    try:
        _converge(lab, _expected([EXAMPLES / "cluster.yaml", policy]))
        pods = lab_pods(lab)
        ip = {k: p["status"]["podIP"] for k, p in pods.items()}
        node_of_xa = pods["x/a"]["spec"]["nodeName"]
        log = lab / "nodes" / node_of_xa / "networkpolicy.log"
        text = log.read_text()[sizes.get(log, 0) :]
        lines = text.splitlines()
        for src, rule, action in (
            ("z/b", "drop-from-z", "Drop"),
            ("y/b", "reject-from-y", "Reject"),
            ("x/b", "allow-rest", "Allow"),
        ):
            want = f"ingress {action} ClusterNetworkPolicy audited tier=securityops rule={rule} "
            hits = [
                line
                for line in lines
                if want in line and f"TCP {ip[src]}:" in line and f"> {ip['x/a']}:80 " in line
            ]
            assert hits, f"no line for {src} -> x/a ({rule}) in:\n{text[-3000:]}"
        assert any("label=blocked" in line for line in lines if "drop-from-z" in line)
        # Only x/a's node logs: the policy protects no pod elsewhere.
        for other in logs:
            if other != log:
                assert "audited" not in other.read_text()[sizes.get(other, 0) :]
    finally:
        fykectl("delete", "-f", str(policy), state=lab)


def test_apply_wait_returns_once_every_agent_enforces(lab: Path) -> None:
    """No polling, TCP and UDP: the first probe after `apply --wait` already sees the
    policies, and the first after `delete --wait` sees them gone. (UDP pairs that had
    talked just before used to be answered right after `--wait` now and then: the
    userspace datapath's cached megaflows of the old rules. The agent now purges them when
    policy flows change, before it reports the policy realized.)"""
    files = [EXAMPLES / "cluster.yaml", EXAMPLES / "policies.yaml"]
    _converge(lab, _expected([EXAMPLES / "cluster.yaml"]))  # every pair has just talked
    fykectl("apply", "-f", str(EXAMPLES / "policies.yaml"), "--wait", state=lab)
    try:
        for realized in lab.glob("nodes/*/realized.json"):
            keys = json.loads(realized.read_text())
            assert "crd.antrea.io/ClusterNetworkPolicy//quarantine-z-c" in keys
            assert "networking.k8s.io/NetworkPolicy/y/allow-x-only" in keys
        assert _differences(_probe(lab), _expected(files)) == []
    finally:
        fykectl("delete", "-f", str(EXAMPLES / "policies.yaml"), "--wait", state=lab)
    assert _differences(_probe(lab), _expected([EXAMPLES / "cluster.yaml"])) == []


def _differences(
    got: dict[str, dict[str, dict[str, str]]], want: dict[str, dict[str, dict[str, str]]]
) -> list[str]:
    return [
        f"{s} -> {d} {p}: matrix {want[s][d][p]}, probe {got.get(s, {}).get(d, {}).get(p)}"
        for s in want
        for d in want[s]
        for p in want[s][d]
        if got.get(s, {}).get(d, {}).get(p) != want[s][d][p]
    ]


# Connects to IP:PORT every 10 ms (timeout 0.3 s) until STOPFILE exists; prints how many
# attempts connected and how many did not.
WATCH = """\
import json, os, socket, sys, time
ip, port, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ok = bad = 0
while not os.path.exists(stop):
    start = time.monotonic()
    try:
        socket.create_connection((ip, port), 0.3).close()
        ok += 1
    except OSError:
        bad += 1
    time.sleep(max(0.0, 0.01 - (time.monotonic() - start)))
print(json.dumps({"ok": ok, "bad": bad}), flush=True)
"""


def _node_flows(lab: Path, node: str) -> list[str]:
    mgmt = lab / "nodes" / node / "ovs" / "br-int.mgmt"
    out = subprocess.run(
        ["ovs-ofctl", "-O", "OpenFlow15", "dump-flows", f"unix:{mgmt}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line.strip() for line in out.splitlines() if "cookie=" in line]


def _without_stats(flows: list[str]) -> list[str]:
    import re

    return sorted(
        re.sub(r"(duration|n_packets|n_bytes|idle_age|hard_age)=[^,]*, ?", "", f) for f in flows
    )


def _min_duration(flows: list[str]) -> float:
    return min(float(f.split("duration=")[1].split("s")[0]) for f in flows)


def test_enforcement_holds_while_the_controller_is_away(lab: Path) -> None:
    """The controller is killed (SIGKILL); while it is away each agent is restarted (it
    starts from its cached span); then the controller comes back. Connections from a
    denied and from an allowed pair, tried every 10 ms throughout, never see a lapse, and
    the controller's return changes no flow (nothing flushed, nothing re-added)."""
    import sys

    from fyke.lab.kubelet import pod_netns
    from fyke.lab.procs import Processes
    from fyke.lab.up import load_spec, start_agent, start_controller

    files = [EXAMPLES / "cluster.yaml", EXAMPLES / "policies.yaml"]
    fykectl("apply", "-f", str(EXAMPLES / "policies.yaml"), "--wait", state=lab)
    procs = Processes(lab)
    watchers: list[subprocess.Popen[str]] = []
    stop = lab / "stop-watching"
    stop.unlink(missing_ok=True)
    try:
        want = _expected(files, ["80/TCP"])
        pods = lab_pods(lab)
        node = {k: p["spec"]["nodeName"] for k, p in pods.items()}
        pairs = {}
        for verdict in ("drop", "allow"):
            pairs[verdict] = next(
                (s, d)
                for s in sorted(want)
                for d in sorted(want[s])
                if want[s][d]["80/TCP"] == verdict and node[s] != node[d]
            )
        for s, d in pairs.values():
            watchers.append(
                subprocess.Popen(
                    [
                        "ip",
                        "netns",
                        "exec",
                        pod_netns(pods[s]),
                        sys.executable,
                        "-c",
                        WATCH,
                        pods[d]["status"]["podIP"],
                        "80",
                        str(stop),
                    ],  # fmt: skip
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        time.sleep(1)
        spec = load_spec(lab)
        pid = json.loads((lab / "pids.json").read_text())["controller"]
        os.kill(pid, signal.SIGKILL)  # no goodbye to anyone
        procs.stop("controller")  # reaps it and forgets it
        time.sleep(1)
        for n in spec.nodes:
            procs.stop(f"agent-{n.name}")
            start_agent(lab, procs, n, spec.encap)
        time.sleep(1)
        before = {n.name: _node_flows(lab, n.name) for n in spec.nodes}
        back = time.monotonic()
        start_controller(lab, procs)
        # Every agent reconnects (its retry is at most 2 s) and gets its snapshot.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            text = (lab / "logs" / "controller.log").read_text()
            if all(f"node {n.name} watches its span" in text for n in spec.nodes):
                break
            time.sleep(0.2)
        time.sleep(2)  # room for a (wrong) flow change to land
        for n in spec.nodes:
            after = _node_flows(lab, n.name)
            assert _without_stats(after) == _without_stats(before[n.name]), n.name
            assert _min_duration(after) > time.monotonic() - back, n.name
        stop.touch()
        counts = {}
        for verdict, w in zip(pairs, watchers, strict=True):
            out, _ = w.communicate(timeout=30)
            counts[verdict] = json.loads(out)
        assert counts["drop"]["ok"] == 0 and counts["drop"]["bad"] > 20, counts
        assert counts["allow"]["bad"] == 0 and counts["allow"]["ok"] > 200, counts
        # The new controller serves changes: the deletion below is realized through it.
    finally:
        stop.touch()
        for w in watchers:
            if w.poll() is None:
                w.kill()
            w.wait()
        if not procs.alive("controller"):
            start_controller(lab, procs)
        fykectl("delete", "-f", str(EXAMPLES / "policies.yaml"), "--wait", state=lab)
    assert _differences(_probe(lab, TCP), _expected([EXAMPLES / "cluster.yaml"], TCP)) == []


def test_antrea_policies_report_their_realization(lab: Path) -> None:
    policy = lab / "audited.yaml"
    policy.write_text(AUDITED)
    fykectl("apply", "-f", str(policy), "--wait", state=lab)
    try:
        kubeconfig = fykectl("kubeconfig", "--path", state=lab).stdout.strip()
        deadline = time.monotonic() + 30
        while True:
            out = subprocess.run(
                ["kubectl", "get", "acnp", "audited", "-o", "json"],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "KUBECONFIG": kubeconfig},
            )
            obj = json.loads(out.stdout)
            status = obj.get("status", {})
            if status.get("phase") == "Realized" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        # x/a is on one node: only that node needs (and realizes) the policy.
        assert status == {
            "phase": "Realized",
            "observedGeneration": obj["metadata"]["generation"],
            "currentNodesRealized": 1,
            "desiredNodesRealized": 1,
        }
    finally:
        fykectl("delete", "-f", str(policy), "--wait", state=lab)


Y_FROM_X = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: y-from-x, namespace: y}
spec:
  podSelector: {}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {ns: x}}}]
"""


def test_audit_log_names_the_policies_behind_an_isolation_drop(lab: Path) -> None:
    """With y annotated for NetworkPolicy logging (as Antrea), a packet dropped because
    y-from-x isolates its destination is logged naming y-from-x, and one its rule allows
    is logged too."""
    policy = lab / "y-from-x.yaml"
    policy.write_text(Y_FROM_X)
    kubeconfig = fykectl("kubeconfig", "--path", state=lab).stdout.strip()
    env = {**os.environ, "KUBECONFIG": kubeconfig}
    annotation = "networkpolicy.antrea.io/enable-logging"
    logs = sorted(lab.glob("nodes/*/networkpolicy.log"))
    sizes = {p: p.stat().st_size for p in logs}
    subprocess.run(["kubectl", "annotate", "ns", "y", f"{annotation}=true"], env=env, check=True)
    fykectl("apply", "-f", str(policy), "--wait", state=lab)
    try:
        _converge(lab, _expected([EXAMPLES / "cluster.yaml", policy]))
        pods = lab_pods(lab)
        ip = {k: p["status"]["podIP"] for k, p in pods.items()}
        log = lab / "nodes" / pods["y/a"]["spec"]["nodeName"] / "networkpolicy.log"
        lines = log.read_text()[sizes.get(log, 0) :].splitlines()
        for src, what in (
            ("z/b", "ingress Drop NetworkPolicy y/y-from-x tier=NetworkPolicy rule=isolation "),
            ("x/b", "ingress Allow NetworkPolicy y/y-from-x tier=NetworkPolicy rule=0 "),
        ):
            hits = [
                line
                for line in lines
                if what in line and f"TCP {ip[src]}:" in line and f"> {ip['y/a']}:80 " in line
            ]
            assert hits, f"no {what!r} for {src} -> y/a in:\n" + "\n".join(lines[-40:])
    finally:
        subprocess.run(["kubectl", "annotate", "ns", "y", f"{annotation}-"], env=env, check=True)
        fykectl("delete", "-f", str(policy), "--wait", state=lab)


def test_lab_explain_asks_the_controller_and_agrees_with_the_offline_explain(lab: Path) -> None:
    fykectl("apply", "-f", str(EXAMPLES / "policies.yaml"), "--wait", state=lab)
    try:
        for src, dst, port in (
            ("z/a", "y/b", "80/TCP"),  # dropped
            ("x/a", "z/c", "80/TCP"),  # rejected
            ("x/a", "y/b", "80/TCP"),  # allowed after a Pass
            ("y/c", "x/b", "81/UDP"),
        ):
            live = json.loads(
                fykectl(
                    "explain", "--from", src, "--to", dst, "--port", port, "-o", "json", state=lab
                ).stdout
            )
            offline = json.loads(
                subprocess.run(
                    [FYKECTL, "policy", "explain", "-f", str(EXAMPLES / "cluster.yaml"),
                     "-f", str(EXAMPLES / "policies.yaml"), "--from", src, "--to", dst,
                     "--port", port, "-o", "json"],
                    capture_output=True, text=True, check=True,
                ).stdout
            )  # fmt: skip
            for key in ("verdict", "egress", "ingress"):
                assert live[key] == offline[key], (src, dst, port, key)
        text = fykectl("explain", "--from", "x/a", "--to", "z/c", "--port", "80/TCP", state=lab)
        assert "quarantine-z-c" in text.stdout and "Reject" in text.stdout
        bad = subprocess.run(
            [FYKECTL, "lab", "explain", "--from", "x/nosuch", "--to", "z/c", "--port", "80/TCP",
             "--state-dir", str(lab)],
            capture_output=True, text=True,
        )  # fmt: skip
        assert bad.returncode == 1 and "no pod x/nosuch" in bad.stderr, bad.stderr
    finally:
        fykectl("delete", "-f", str(EXAMPLES / "policies.yaml"), "--wait", state=lab)
