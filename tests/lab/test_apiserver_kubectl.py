"""Real kubectl against the lab API server."""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request

import yaml

from tests.lab.conftest import LabApiServer

MANIFESTS = """
apiVersion: v1
kind: Namespace
metadata: {name: x, labels: {ns: x}}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {pod: a}}
spec:
  nodeName: node-1
  containers:
  - name: c
    image: agnhost
    ports: [{containerPort: 80, name: http}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: np, namespace: x}
spec:
  podSelector: {}
  ingress:
  - from: [{podSelector: {matchLabels: {pod: a}}}]
    ports: [{port: 80}, {port: 81}]
"""


def _ports(srv: LabApiServer) -> list[object]:
    out = srv.kubectl("get", "netpol", "np", "-n", "x", "-o", "json").stdout
    return list(json.loads(out)["spec"]["ingress"][0]["ports"])


def test_create_get_columns_and_delete(apiserver: LabApiServer) -> None:
    out = apiserver.kubectl("create", "-f", "-", stdin=MANIFESTS).stdout
    assert "pod/a created" in out and "networkpolicy.networking.k8s.io/np created" in out
    wide = apiserver.kubectl("get", "pods", "-n", "x", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    assert wide[1].split()[0] == "a" and wide[1].split()[-1] == "node-1"
    again = apiserver.kubectl("create", "-f", "-", stdin=MANIFESTS, check=False)
    assert again.returncode != 0 and "AlreadyExists" in again.stderr + "already exists"
    out = apiserver.kubectl("delete", "-f", "-", stdin=MANIFESTS).stdout
    assert 'namespace "x" deleted' in out and 'pod "a" deleted' in out
    gone = apiserver.kubectl("get", "ns", "x", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


def test_server_side_apply_creates_then_updates(apiserver: LabApiServer) -> None:
    out = apiserver.kubectl("apply", "--server-side", "-f", "-", stdin=MANIFESTS).stdout
    assert "networkpolicy.networking.k8s.io/np serverside-applied" in out
    assert _ports(apiserver) == [{"port": 80}, {"port": 81}]
    fewer = MANIFESTS.replace("ports: [{port: 80}, {port: 81}]", "ports: [{port: 80}]")
    apiserver.kubectl("apply", "--server-side", "-f", "-", stdin=fewer)
    assert _ports(apiserver) == [{"port": 80}]
    gen = apiserver.kubectl(
        "get", "netpol", "np", "-n", "x", "-o", "jsonpath={.metadata.generation}"
    ).stdout
    assert gen == "2"


def test_client_side_apply_removes_a_list_element(apiserver: LabApiServer) -> None:
    apiserver.kubectl("apply", "-f", "-", stdin=MANIFESTS)
    pod = MANIFESTS.replace(
        "ports: [{containerPort: 80, name: http}]",
        "ports: [{containerPort: 80, name: http}, {containerPort: 81, name: alt}]",
    )
    apiserver.kubectl("apply", "-f", "-", stdin=pod)
    got = json.loads(apiserver.kubectl("get", "pod", "a", "-n", "x", "-o", "json").stdout)
    assert [p["containerPort"] for p in got["spec"]["containers"][0]["ports"]] == [80, 81]
    # Back to one port: kubectl sends a strategic merge patch that deletes the element.
    apiserver.kubectl("apply", "-f", "-", stdin=MANIFESTS)
    got = json.loads(apiserver.kubectl("get", "pod", "a", "-n", "x", "-o", "json").stdout)
    assert got["spec"]["containers"][0]["ports"] == [{"containerPort": 80, "name": "http"}]
    fewer = MANIFESTS.replace("ports: [{port: 80}, {port: 81}]", "ports: [{port: 81}]")
    apiserver.kubectl("apply", "-f", "-", stdin=fewer)
    assert _ports(apiserver) == [{"port": 81}]


def test_invalid_network_policy_is_rejected_with_its_field(apiserver: LabApiServer) -> None:
    bad = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: bad, namespace: default}
spec:
  podSelector: {}
  ingress:
  - ports: [{port: 100, endPort: 90}]
"""
    for args in (["create", "-f", "-"], ["apply", "--server-side", "-f", "-"]):
        out = apiserver.kubectl(*args, stdin=bad, check=False)
        assert out.returncode != 0
        assert 'The NetworkPolicy "bad" is invalid' in out.stderr
        assert "spec.ingress[0].ports[0].endPort: must be >= port (100)" in out.stderr


def test_watch_streams_modified(apiserver: LabApiServer) -> None:
    apiserver.kubectl("create", "-f", "-", stdin=MANIFESTS)
    watch = apiserver.kubectl_bg(
        "get", "pods", "-n", "x", "-w", "--output-watch-events", "-o", "json"
    )
    assert watch.stdout is not None
    decoder = json.JSONDecoder()
    buf = ""
    seen: list[str] = []
    deadline = time.monotonic() + 30
    labelled = False
    while time.monotonic() < deadline and "MODIFIED" not in seen:
        line = watch.stdout.readline()
        buf += line
        try:
            ev, end = decoder.raw_decode(buf.lstrip())
        except json.JSONDecodeError:
            continue
        buf = buf.lstrip()[end:]
        seen.append(ev["type"])
        if not labelled:
            apiserver.kubectl("label", "pod", "a", "-n", "x", "seen=yes")
            labelled = True
    assert seen[0] == "ADDED" and "MODIFIED" in seen


def test_objects_and_resource_versions_survive_a_restart(apiserver: LabApiServer) -> None:
    apiserver.kubectl("create", "-f", "-", stdin=MANIFESTS)
    before = json.loads(apiserver.kubectl("get", "pod", "a", "-n", "x", "-o", "json").stdout)
    apiserver.restart()
    after = json.loads(apiserver.kubectl("get", "pod", "a", "-n", "x", "-o", "json").stdout)
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    apiserver.kubectl("label", "pod", "a", "-n", "x", "later=yes")
    newer = json.loads(apiserver.kubectl("get", "pod", "a", "-n", "x", "-o", "json").stdout)
    assert int(newer["metadata"]["resourceVersion"]) > int(before["metadata"]["resourceVersion"])


def _request(srv: LabApiServer, path: str, token: str | None) -> tuple[int, dict[str, object]]:
    cfg = yaml.safe_load(srv.kubeconfig.read_text())
    ctx = ssl.create_default_context(cafile=str(srv.data_dir / "ca.crt"))
    req = urllib.request.Request(cfg["clusters"][0]["cluster"]["server"] + path)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_no_credentials_no_entry(apiserver: LabApiServer) -> None:
    code, body = _request(apiserver, "/api/v1/namespaces", None)
    assert code == 401 and body["reason"] == "Unauthorized"
    code, _ = _request(apiserver, "/api/v1/namespaces", "wrong-token")
    assert code == 401
    token = yaml.safe_load(apiserver.kubeconfig.read_text())["users"][0]["user"]["token"]
    code, body = _request(apiserver, "/api/v1/namespaces", token)
    assert code == 200 and body["kind"] == "NamespaceList"


def test_selectors(apiserver: LabApiServer) -> None:
    apiserver.kubectl("create", "-f", "-", stdin=MANIFESTS)
    other = (
        MANIFESTS.split("---")[1]
        .replace("name: a,", "name: b,")
        .replace("node-1", "node-2")
        .replace("pod: a", "pod: b")
    )
    apiserver.kubectl("create", "-f", "-", stdin=other)
    names = apiserver.kubectl(
        "get", "pods", "-A", "--field-selector", "spec.nodeName=node-2", "-o", "name"
    ).stdout.split()
    assert names == ["pod/b"]
    names = apiserver.kubectl(
        "get", "pods", "-n", "x", "-l", "pod in (a),pod!=b", "-o", "name"
    ).stdout.split()
    assert names == ["pod/a"]
