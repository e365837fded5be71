"""Independent clients against the lab API server: the official kubernetes client,
lightkube, and fyke's own reflector (which must lose no event across a restart)."""

from __future__ import annotations

import asyncio

import httpx
import kubernetes
import pytest

from fyke.kube import resources
from fyke.kube.client import async_client
from fyke.kube.reflector import Change, Reflector
from tests.lab.conftest import LabApiServer


def _pod(name: str, node: str = "node-1") -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "agnhost"}]},
    }


def _official(srv: LabApiServer) -> kubernetes.client.CoreV1Api:
    api = kubernetes.config.new_client_from_config(config_file=str(srv.kubeconfig))
    return kubernetes.client.CoreV1Api(api)


def test_official_client_lists_watches_and_sees_410(apiserver: LabApiServer) -> None:
    core = _official(apiserver)
    core.create_namespaced_pod("default", _pod("a"))
    listed = core.list_namespaced_pod("default")
    assert [p.metadata.name for p in listed.items] == ["a"]
    rv = listed.metadata.resource_version
    core.patch_namespaced_pod("a", "default", {"metadata": {"labels": {"x": "1"}}})
    core.delete_namespaced_pod("a", "default")
    w = kubernetes.watch.Watch()
    seen = []
    for ev in w.stream(core.list_namespaced_pod, "default", resource_version=rv, timeout_seconds=2):
        seen.append((ev["type"], ev["object"].metadata.name))
        if len(seen) == 2:
            w.stop()
    assert seen == [("MODIFIED", "a"), ("DELETED", "a")]
    apiserver.restart()  # the event log starts afresh: rv is now too old to watch from
    core = _official(apiserver)
    with pytest.raises(kubernetes.client.ApiException) as gone:
        for _ in kubernetes.watch.Watch().stream(
            core.list_namespaced_pod, "default", resource_version=rv, timeout_seconds=2
        ):
            pass
    assert gone.value.status == 410


def test_official_client_conflict_on_stale_resource_version(apiserver: LabApiServer) -> None:
    core = _official(apiserver)
    pod = core.create_namespaced_pod("default", _pod("a"))
    pod.metadata.labels["v"] = "1"
    core.replace_namespaced_pod("a", "default", pod)
    pod.metadata.labels["v"] = "2"  # still carries the old resourceVersion
    with pytest.raises(kubernetes.client.ApiException) as stale:
        core.replace_namespaced_pod("a", "default", pod)
    assert stale.value.status == 409


def test_lightkube_lists_watches_and_sees_410(apiserver: LabApiServer) -> None:
    async def go() -> None:
        client = async_client(str(apiserver.kubeconfig))
        pods = resources.POD.resource()
        await client.create(pods.from_dict(_pod("a")), namespace="default")  # type: ignore[attr-defined]
        listing = client.list(pods, namespace="default")
        names = [p.metadata.name async for p in listing]  # type: ignore[union-attr]
        assert names == ["a"]
        rv = listing.resourceVersion
        await client.delete(pods, "a", namespace="default")
        async for kind, obj in client.watch(pods, namespace="default", resource_version=rv):
            assert (kind, obj.metadata.name) == ("DELETED", "a")  # type: ignore[union-attr]
            break
        await client.close()
        apiserver.restart()
        client = async_client(str(apiserver.kubeconfig))
        # lightkube's watch surfaces the HTTP status as httpx raises it.
        with pytest.raises(httpx.HTTPStatusError) as gone:
            async for _ in client.watch(pods, namespace="default", resource_version=rv):
                pass
        assert gone.value.response.status_code == 410
        await client.close()

    asyncio.run(go())


def test_reflector_loses_no_event_across_a_restart(apiserver: LabApiServer) -> None:
    core = _official(apiserver)
    for name in ("a", "b"):
        core.create_namespaced_pod("default", _pod(name))

    async def go() -> list[Change]:
        client = async_client(str(apiserver.kubeconfig))
        changes: list[Change] = []
        refl = Reflector(client, resources.POD, changes.append, backoff=2.0)
        task = asyncio.create_task(refl.run())
        await asyncio.wait_for(refl.synced.wait(), 10)
        assert sorted(k[1] for k in refl.cache) == ["a", "b"]
        changes.clear()
        # Restart, and change things before the reflector is back (its backoff is 2 s).
        await asyncio.to_thread(apiserver.restart)
        c2 = _official(apiserver)
        await asyncio.to_thread(c2.delete_namespaced_pod, "a", "default")
        await asyncio.to_thread(
            c2.patch_namespaced_pod, "b", "default", {"metadata": {"labels": {"v": "2"}}}
        )
        await asyncio.to_thread(c2.create_namespaced_pod, "default", _pod("c"))
        for _ in range(100):
            if sorted(k[1] for k in refl.cache) == ["b", "c"] and any(
                ch.type == "MODIFIED" for ch in changes
            ):
                break
            await asyncio.sleep(0.1)
        # And the watch works again afterwards.
        await asyncio.to_thread(c2.create_namespaced_pod, "default", _pod("d"))
        for _ in range(100):
            if ("default", "d") in refl.cache:
                break
            await asyncio.sleep(0.1)
        task.cancel()
        await client.close()
        assert refl.relists >= 2
        return changes

    changes = asyncio.run(go())
    got = sorted((c.type, c.object["metadata"]["name"]) for c in changes)
    assert got == [("ADDED", "c"), ("ADDED", "d"), ("DELETED", "a"), ("MODIFIED", "b")]
    modified = next(c for c in changes if c.type == "MODIFIED")
    assert modified.object["metadata"]["labels"]["v"] == "2"
    assert modified.old is not None and "v" not in modified.old["metadata"]["labels"]
