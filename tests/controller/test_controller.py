"""The fyke-controller process against a real lab API server: each node gets its own
span and nothing else, only with its token, as a snapshot and then member deltas; what
agents report realized becomes Antrea-style status on the policy objects."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from fyke.api.load import documents
from fyke.controller.auth import ADMIN, ensure_secret, node_token
from tests.lab.conftest import LabApiServer

EXAMPLES = Path(__file__).parents[2] / "examples"
NODES = ["node-1", "node-2", "node-3"]


@dataclass
class Controller:
    url: str
    ca: str
    secret: bytes

    def token(self, node: str) -> str:
        return node_token(self.secret, node)


def _cluster_docs() -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The example cluster with its pods spread over three nodes (pod -> node)."""
    docs = [dict(d) for d in documents((EXAMPLES / "cluster.yaml").read_text(), "cluster")]
    placed = {}
    for i, d in enumerate(x for x in docs if x["kind"] == "Pod"):
        d["spec"]["nodeName"] = NODES[i % 3]
        placed[f"{d['metadata']['namespace']}/{d['metadata']['name']}"] = NODES[i % 3]
    nodes = [{"apiVersion": "v1", "kind": "Node", "metadata": {"name": n}} for n in NODES]
    return nodes + docs, placed


def _apply(api: LabApiServer, docs: list[dict[str, Any]]) -> None:
    # JSON: YAML would write namespace y unquoted, which kubectl reads as a boolean.
    api.kubectl(
        "apply",
        "--validate=false",
        "-f",
        "-",
        stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}),
    )
    for d in docs:  # pod IPs go through the status subresource, as a kubelet writes them
        if d["kind"] == "Pod" and "status" in d:
            api.kubectl(
                "patch", "pod", d["metadata"]["name"], "-n", d["metadata"]["namespace"],
                "--subresource=status", "--type=merge", "-p", json.dumps({"status": d["status"]}),
            )  # fmt: skip


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[LabApiServer, Controller, dict[str, str]]]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed on this machine")
    api = LabApiServer(tmp_path / "api")
    api.start()
    proc = None
    try:
        docs, placed = _cluster_docs()
        _apply(api, docs)
        _apply(api, [dict(d) for d in documents((EXAMPLES / "policies.yaml").read_text(), "p")])
        state = tmp_path / "controller"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fyke.controller.main",
                "--kubeconfig",
                str(api.kubeconfig),
                "--state-dir",
                str(state),
                "--listen",
                "127.0.0.1:0",
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / "controller.log", "w"),  # noqa: SIM115
        )
        endpoint = state / "endpoint.json"
        deadline = time.monotonic() + 60
        while not endpoint.exists():
            assert proc.poll() is None, (tmp_path / "controller.log").read_text()
            assert time.monotonic() < deadline, "the controller did not start"
            time.sleep(0.1)
        info = json.loads(endpoint.read_text())
        assert info["pid"] == proc.pid
        secret = ensure_secret(state / "node-token-secret")
        yield api, Controller(info["url"], str(state / "ca.crt"), secret), placed
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        api.close()


class Stream:
    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self.resp = resp
        self.buf = b""

    async def next(self, timeout: float = 20) -> dict[str, Any]:
        while b"\n" not in self.buf:
            self.buf += await asyncio.wait_for(self.resp.content.readany(), timeout)
        line, self.buf = self.buf.split(b"\n", 1)
        msg: dict[str, Any] = json.loads(line)
        return msg

    async def next_update(self, timeout: float = 20) -> dict[str, Any]:
        while True:
            msg = await self.next(timeout)
            if msg["type"] != "PING":
                return msg


async def _session(c: Controller, token: str | None) -> aiohttp.ClientSession:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return aiohttp.ClientSession(
        headers=headers, connector=aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=c.ca))
    )


@contextlib.asynccontextmanager
async def _watch(c: Controller, node: str) -> AsyncIterator[Stream]:
    async with await _session(c, c.token(node)) as s, s.get(f"{c.url}/v1/span/watch") as r:
        assert r.status == 200
        yield Stream(r)


def test_each_node_gets_its_own_span(cluster: Any) -> None:
    _, c, placed = cluster

    async def go() -> None:
        for node in NODES:
            async with _watch(c, node) as stream:
                snap = await stream.next()
                assert snap["type"] == "SNAPSHOT"
                span = snap["span"]
                mine = {p for p, n in placed.items() if n == node}
                members = set().union(*map(set, span["appliedToGroups"].values()))
                assert members and members <= mine, node
                # Every policy object of the cluster has a version, spanned here or not.
                assert len(span["versions"]) == 5

    asyncio.run(go())


def test_only_a_genuine_node_token_is_served(cluster: Any) -> None:
    _, c, _ = cluster
    forged = Controller(c.url, c.ca, b"not the secret")

    async def status(token: str | None, method: str = "GET", path: str = "watch") -> int:
        async with await _session(c, token) as s:
            body = {"versions": {}} if method == "POST" else None
            async with s.request(method, f"{c.url}/v1/span/{path}", json=body) as r:
                return r.status

    async def go() -> None:
        assert await status(None) == 401
        assert await status("node-1.0000") == 401
        assert await status(forged.token("node-1")) == 401
        assert await status(c.token("node-1")[:-1] + "x") == 401
        assert await status(forged.token("node-1"), "POST", "realized") == 401
        assert await status(c.token("node-1"), "POST", "realized") == 200
        # The admin token queries; it is no node's, and nodes do not query.
        assert await status(c.token(ADMIN)) == 403
        async with await _session(c, c.token("node-1")) as s:
            body = {"from": "x/a", "to": "z/c", "port": "80/TCP"}
            async with s.post(f"{c.url}/v1/evaluate", json=body) as r:
                assert r.status == 403
        async with await _session(c, c.token(ADMIN)) as s:
            async with s.post(f"{c.url}/v1/evaluate", json=body) as r:
                assert r.status == 200
                assert (await r.json())["verdict"] == "reject"
            bad = {"from": "x/a", "to": "z/c", "port": "80/XTP"}
            async with s.post(f"{c.url}/v1/evaluate", json=bad) as r:
                assert r.status == 400 and "protocol" in (await r.json())["error"]

    asyncio.run(go())


def test_a_new_pod_reaches_other_nodes_as_a_member_delta(cluster: Any) -> None:
    api, c, placed = cluster

    async def go() -> None:
        async with _watch(c, "node-1") as stream:
            assert (await stream.next())["type"] == "SNAPSHOT"
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "d", "namespace": "y", "labels": {"pod": "d"}},
                "spec": {"nodeName": "node-2", "containers": [{"name": "c", "image": "x"}]},
                "status": {"podIP": "10.10.0.99", "podIPs": [{"ip": "10.10.0.99"}]},
            }
            await asyncio.to_thread(_apply, api, [pod])
            # The pod first appears without an IP (nothing to send), then with one.
            update = await stream.next_update()
            while not update["events"]:
                update = await stream.next_update()
            assert update["type"] == "UPDATE"
            kinds = {(e["op"], e["kind"]) for e in update["events"]}
            assert kinds == {("modify", "AddressGroup")}, update
            for e in update["events"]:
                assert e["added"] == ["10.10.0.99/32"] and e["removed"] == []

    asyncio.run(go())


def test_status_counts_the_nodes_that_report_a_policy_realized(cluster: Any) -> None:
    api, c, _ = cluster

    def status() -> dict[str, Any]:
        out = api.kubectl("get", "acnp", "quarantine-z-c", "-o", "json")
        got: dict[str, Any] = json.loads(out.stdout).get("status", {})
        return got

    def until(cond: Any) -> dict[str, Any]:
        deadline = time.monotonic() + 20
        while not cond(got := status()):
            assert time.monotonic() < deadline, got
            time.sleep(0.1)
        return got

    first = until(lambda s: s.get("phase") == "Realizing")
    desired = first["desiredNodesRealized"]
    assert first["currentNodesRealized"] == 0 and desired >= 1

    async def report() -> None:
        for node in NODES:
            async with _watch(c, node) as stream:
                span = (await stream.next())["span"]
                async with await _session(c, c.token(node)) as s:
                    r = await s.post(
                        f"{c.url}/v1/span/realized", json={"versions": span["versions"]}
                    )
                    assert r.status == 200

    asyncio.run(report())
    done = until(lambda s: s.get("phase") == "Realized")
    assert done["currentNodesRealized"] == desired == done["desiredNodesRealized"]
    assert done["observedGeneration"] == 1


def test_an_agent_without_controller_cuts_the_same_span(cluster: Any, tmp_path: Path) -> None:
    """LocalSource (no --controller) and the controller give a node the same span."""
    from fyke.agent.policies import LocalSource, PolicyView
    from fyke.datapath.span import span_json
    from fyke.kube.client import async_client

    api, c, _ = cluster

    async def go() -> None:
        async with _watch(c, "node-2") as stream:
            served = (await stream.next())["span"]
        changed = asyncio.Event()

        async def on_change() -> None:
            changed.set()

        client = async_client(str(api.kubeconfig), field_manager="test")
        view = PolicyView(tmp_path, on_change)
        local = LocalSource(client, "node-2", view)
        try:
            await local.start()
            assert span_json(view.span) == served
        finally:
            await local.stop()
            await client.close()  # type: ignore[no-untyped-call]

    asyncio.run(go())
