"""The controller's core on reflector caches filled by hand (no server): status, what
triggers a compile, cutting off a watcher that falls behind."""

from __future__ import annotations

import asyncio
from typing import Any

from fyke.api.load import documents
from fyke.controller.spans import SpanController
from tests.controller.test_controller import EXAMPLES, _cluster_docs

ACNP = "crd.antrea.io/ClusterNetworkPolicy//"


def _controller(extra: list[dict[str, Any]]) -> SpanController:
    c = SpanController(None, b"secret", write_status=False)  # type: ignore[arg-type]
    docs, _ = _cluster_docs()
    policies = [dict(d) for d in documents((EXAMPLES / "policies.yaml").read_text(), "p")]
    by_kind = {(r.kind.group, r.kind.kind): r for r in c.policies.reflectors}
    for i, d in enumerate([*docs, *policies, *extra]):
        group = d["apiVersion"].rpartition("/")[0]
        meta = {**d["metadata"], "uid": f"uid-{i}", "generation": 3}
        obj = {k: v for k, v in d.items() if k not in ("apiVersion", "kind")}
        by_kind[(group, d["kind"])].cache[(meta.get("namespace", ""), meta["name"])] = {
            **obj,
            "metadata": meta,
        }
    return c


BROKEN = {
    "apiVersion": "crd.antrea.io/v1beta1",
    "kind": "ClusterNetworkPolicy",
    "metadata": {"name": "broken"},
    "spec": {
        "priority": 1,
        "appliedTo": [{"podSelector": {}}],
        "ingress": [{"action": "Allow", "enableLogging": "yes"}],
    },
}


def test_status_follows_what_nodes_report() -> None:
    c = _controller([])
    asyncio.run(c._recompute())
    status = c.statuses()
    assert set(status) == {ACNP + "quarantine-z-c"}  # only Antrea kinds carry status
    got = status[ACNP + "quarantine-z-c"]
    assert got["phase"] == "Realizing" and got["currentNodesRealized"] == 0
    desired = [n for n, s in c.spans.items() if ACNP + "quarantine-z-c" in s.policies]
    assert got["desiredNodesRealized"] == len(desired) >= 1
    # A node that reports an older generation does not count.
    c.realized[desired[0]] = {ACNP + "quarantine-z-c": (c.versions[ACNP + "quarantine-z-c"][0], 2)}
    assert c.statuses()[ACNP + "quarantine-z-c"]["currentNodesRealized"] == 0
    for node in desired:
        c.realized[node] = dict(c.versions)
    assert c.statuses()[ACNP + "quarantine-z-c"] == {
        "phase": "Realized",
        "observedGeneration": 3,
        "currentNodesRealized": len(desired),
        "desiredNodesRealized": len(desired),
    }


def test_an_invalid_policy_fails_naming_the_field_and_spares_the_rest() -> None:
    c = _controller([BROKEN])
    asyncio.run(c._recompute())
    status = c.statuses()
    broken = status[ACNP + "broken"]
    assert broken["phase"] == "Failed"
    assert "enableLogging" in broken["conditions"][0]["message"]
    assert status[ACNP + "quarantine-z-c"]["phase"] == "Realizing"
    assert all(ACNP + "broken" not in s.policies for s in c.spans.values())


def test_a_watcher_too_far_behind_is_cut_off() -> None:
    """Its handler (stuck writing to an agent that stopped reading) is cancelled and the
    queue dropped; the agent reconnects and starts from a snapshot."""
    from fyke.controller import spans

    async def go() -> None:
        c = _controller([])
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        stuck = asyncio.create_task(asyncio.sleep(3600))
        c.watchers["node-1"].add(q)
        c._handlers[q] = stuck
        for i in range(spans.MAX_PENDING):
            c._send("node-1", {"type": "UPDATE", "n": i})
        assert q in c.watchers["node-1"] and not stuck.cancelled()
        c._send("node-1", {"type": "UPDATE", "n": spans.MAX_PENDING})
        await asyncio.sleep(0)
        assert q not in c.watchers["node-1"] and stuck.cancelled()
        assert q.qsize() == spans.MAX_PENDING

    asyncio.run(go())


NO_TIER = {
    "apiVersion": "crd.antrea.io/v1beta1",
    "kind": "NetworkPolicy",
    "metadata": {"name": "lost", "namespace": "x"},
    "spec": {
        "tier": "nosuch",
        "priority": 1,
        "appliedTo": [{"podSelector": {}}],
        "ingress": [{"action": "Drop"}],
    },
}


def test_a_policy_naming_no_tier_fails_alone() -> None:
    """Tier references are checked when compiling, after the objects were read: the
    controller leaves that policy out (Failed) and enforces the rest."""
    c = _controller([NO_TIER])
    asyncio.run(c._recompute())
    status = c.statuses()
    lost = status["crd.antrea.io/NetworkPolicy/x/lost"]
    assert lost["phase"] == "Failed" and "nosuch" in lost["conditions"][0]["message"]
    assert status[ACNP + "quarantine-z-c"]["phase"] == "Realizing"
    assert any(s.policies for s in c.spans.values())


def test_only_changes_the_compiler_reads_trigger_a_compile() -> None:
    """A pod's status heartbeat, a node's conditions, a policy's status: no compile.
    A pod IP, a label, a node address, a namespace annotation: a compile."""
    from fyke.kube import resources
    from fyke.kube.reflector import Change

    c = _controller([])
    pod = {
        "metadata": {"name": "a", "namespace": "x", "labels": {"pod": "a"}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "ports": []}]},
        "status": {"phase": "Running", "podIP": "10.0.0.1", "conditions": []},
    }
    node = {"metadata": {"name": "n", "labels": {}}, "status": {"conditions": [], "addresses": []}}
    ns = {"metadata": {"name": "x", "labels": {"ns": "x"}}}
    acnp = {"metadata": {"name": "p", "generation": 1}, "spec": {"priority": 1}, "status": {}}

    def changed(kind: resources.Kind, old: dict[str, Any], edit: Any) -> bool:
        import copy

        new = copy.deepcopy(old)
        edit(new)
        c.policies._dirty.clear()
        asyncio.run(c.policies._on_change(kind, Change("MODIFIED", new, old)))
        return c.policies._dirty.is_set()

    assert not changed(resources.POD, pod, lambda p: p["status"]["conditions"].append({}))
    assert not changed(resources.POD, pod, lambda p: p["metadata"].update(resourceVersion="9"))
    assert changed(resources.POD, pod, lambda p: p["status"].update(podIP="10.0.0.2"))
    assert changed(resources.POD, pod, lambda p: p["metadata"]["labels"].update(pod="b"))
    assert not changed(resources.NODE, node, lambda n: n["status"]["conditions"].append({}))
    assert changed(resources.NODE, node, lambda n: n["status"]["addresses"].append({}))
    assert changed(resources.NAMESPACE, ns, lambda n: n["metadata"].update(annotations={}))
    kind = resources.ANTREA_CLUSTER_NETWORK_POLICY
    assert not changed(kind, acnp, lambda p: p["status"].update(phase="Realized"))
    assert changed(kind, acnp, lambda p: p["spec"].update(priority=2))
