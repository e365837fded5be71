"""API conventions over plain HTTP: status subresource, generation, watch timeouts and
bookmarks, discovery, Tables."""

from __future__ import annotations

import json
import ssl
import time
import urllib.request
from typing import Any

import yaml

from tests.lab.conftest import LabApiServer


class Http:
    def __init__(self, srv: LabApiServer) -> None:
        cfg = yaml.safe_load(srv.kubeconfig.read_text())
        self.base = cfg["clusters"][0]["cluster"]["server"]
        self.token = cfg["users"][0]["user"]["token"]
        self.ctx = ssl.create_default_context(cafile=str(srv.data_dir / "ca.crt"))

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        ctype: str = "application/json",
        accept: str = "application/json",
    ) -> tuple[int, Any]:
        data = (
            None
            if body is None
            else (body if isinstance(body, bytes) else json.dumps(body).encode())
        )
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Content-Type", ctype)
        req.add_header("Accept", accept)
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=30) as resp:
                raw = resp.read()
                return resp.status, [json.loads(x) for x in raw.splitlines() if x] if (
                    "watch=" in path
                ) else json.loads(raw)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())


POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "a", "labels": {"app": "a"}},
    "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "i"}]},
    "status": {"podIP": "10.0.0.9"},
}


def test_status_subresource_and_generation(apiserver: LabApiServer) -> None:
    h = Http(apiserver)
    code, pod = h.call("POST", "/api/v1/namespaces/default/pods", POD)
    assert code == 201
    assert "status" not in pod  # written through /status only
    assert pod["metadata"]["generation"] == 1 and pod["metadata"]["uid"]
    code, pod = h.call(
        "PATCH",
        "/api/v1/namespaces/default/pods/a/status",
        {"status": {"podIP": "10.0.0.9", "phase": "Running"}},
        ctype="application/merge-patch+json",
    )
    assert code == 200 and pod["status"]["podIP"] == "10.0.0.9"
    assert pod["metadata"]["generation"] == 1  # status changes do not bump generation
    # The main resource ignores status and bumps generation on a spec change.
    pod["status"] = {"podIP": "1.1.1.1"}
    pod["spec"]["containers"][0]["image"] = "j"
    code, pod = h.call("PUT", "/api/v1/namespaces/default/pods/a", pod)
    assert code == 200 and pod["status"]["podIP"] == "10.0.0.9"
    assert pod["metadata"]["generation"] == 2
    # A label change is not a spec change.
    code, pod = h.call(
        "PATCH",
        "/api/v1/namespaces/default/pods/a",
        {"metadata": {"labels": {"v": "1"}}},
        ctype="application/strategic-merge-patch+json",
    )
    assert code == 200 and pod["metadata"]["generation"] == 2


def test_json_patch_and_conflicts(apiserver: LabApiServer) -> None:
    h = Http(apiserver)
    h.call("POST", "/api/v1/namespaces/default/pods", POD)
    code, pod = h.call(
        "PATCH",
        "/api/v1/namespaces/default/pods/a",
        [{"op": "add", "path": "/metadata/labels/x", "value": "y"}],
        ctype="application/json-patch+json",
    )
    assert code == 200 and pod["metadata"]["labels"] == {"app": "a", "x": "y"}
    stale = {**pod, "metadata": {**pod["metadata"], "resourceVersion": "1"}}
    code, body = h.call("PUT", "/api/v1/namespaces/default/pods/a", stale)
    assert code == 409 and body["reason"] == "Conflict"
    code, body = h.call("POST", "/api/v1/namespaces/default/pods", POD)
    assert code == 409 and body["reason"] == "AlreadyExists"
    code, body = h.call("POST", "/api/v1/namespaces/nope/pods", POD)
    assert code == 404


def test_watch_times_out_with_bookmarks(apiserver: LabApiServer) -> None:
    h = Http(apiserver)
    _, listing = h.call("GET", "/api/v1/namespaces/default/pods")
    rv = listing["metadata"]["resourceVersion"]
    start = time.monotonic()
    code, events = h.call(
        "GET",
        f"/api/v1/namespaces/default/pods?watch=1&resourceVersion={rv}"
        "&timeoutSeconds=7&allowWatchBookmarks=true",
    )
    assert code == 200
    assert time.monotonic() - start >= 6  # held open until the timeout
    assert events and all(e["type"] == "BOOKMARK" for e in events)
    assert events[0]["object"]["metadata"]["resourceVersion"] == rv


def test_discovery_and_tables(apiserver: LabApiServer) -> None:
    h = Http(apiserver)
    _, version = h.call("GET", "/version")
    assert version["minor"] == "32"
    _, groups = h.call("GET", "/apis")
    names = {g["name"] for g in groups["groups"]}
    assert {"networking.k8s.io", "crd.antrea.io", "policy.networking.k8s.io"} <= names
    _, crd = h.call("GET", "/apis/crd.antrea.io/v1beta1")
    kinds = {r["kind"]: r["namespaced"] for r in crd["resources"] if "/" not in r["name"]}
    assert kinds == {
        "ClusterNetworkPolicy": False,
        "NetworkPolicy": True,
        "Tier": False,
        "ClusterGroup": False,
        "Group": True,
        "Traceflow": False,
    }
    h.call("POST", "/api/v1/namespaces/default/pods", POD)
    _, table = h.call(
        "GET",
        "/api/v1/namespaces/default/pods",
        accept="application/json;as=Table;v=v1;g=meta.k8s.io",
    )
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]][:3] == ["Name", "Ready", "Status"]
    assert table["rows"][0]["cells"][0] == "a"
