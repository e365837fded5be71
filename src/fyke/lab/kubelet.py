"""The lab kubelet: for each Pod bound to its node, a network namespace wired by the CNI
plugin exactly as containerd calls it, a server answering on the pod's containerPorts,
and status.podIP/phase written back. Deleting the pod undoes it (CNI DEL, namespace gone).

Usage (one per node, started by `fykectl lab up`):
  python -m fyke.lab.kubelet --node node-1 --kubeconfig K --cni-conf F --state-dir D
      [--node-netns fyke-node-1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from lightkube.types import PatchType

from fyke.kube import resources
from fyke.kube.client import async_client
from fyke.kube.reflector import Change, Reflector
from fyke.lab import net

log = logging.getLogger("fyke.kubelet")
RETRY_SECONDS = 3.0
Obj = dict[str, Any]


def pod_netns(pod: Obj) -> str:
    uid = pod["metadata"].get("uid", "")
    return f"fyke-pod-{hashlib.sha1(uid.encode(), usedforsecurity=False).hexdigest()[:12]}"


def container_id(pod: Obj) -> str:
    return hashlib.sha256(pod["metadata"].get("uid", "").encode()).hexdigest()


class Kubelet:
    def __init__(self, args: argparse.Namespace) -> None:
        self.node = args.node
        self.node_netns = args.node_netns
        self.cni_conf = Path(args.cni_conf).read_text()
        self.cni_bin = args.cni_bin
        self.state = Path(args.state_dir)
        self.client = async_client(args.kubeconfig, field_manager=f"fyke-kubelet-{self.node}")
        self.pods: Any = resources.POD.resource()  # lightkube's typing knows no generics
        self.servers: dict[str, subprocess.Popen[bytes]] = {}
        self.running: dict[str, Obj] = {}  # ns/name -> pod
        self.wanted: dict[str, Obj] = {}  # pods bound here that are not deleted
        self.lock = asyncio.Lock()

    # --- CNI, as containerd runs it ------------------------------------------------------

    def _exec_cni(self, env: dict[str, str], conf: str, timeout: float = 60) -> tuple[int, Obj]:
        """Run the plugin as containerd does: env, config on stdin, inside the node."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CNI_PATH": str(Path(self.cni_bin).parent),
            **env,
        }
        argv = [self.cni_bin]
        if self.node_netns:
            argv = ["ip", "netns", "exec", self.node_netns, *argv]
        out = subprocess.run(
            argv, input=conf, env=env, capture_output=True, text=True, timeout=timeout
        )
        try:
            result: Obj = json.loads(out.stdout) if out.stdout.strip() else {}
        except json.JSONDecodeError:
            result = {"msg": out.stdout + out.stderr}
        return out.returncode, result

    def _cni(self, command: str, pod: Obj) -> tuple[int, Obj]:
        meta = pod["metadata"]
        return self._exec_cni(
            {
                "CNI_COMMAND": command,
                "CNI_CONTAINERID": container_id(pod),
                "CNI_NETNS": f"/var/run/netns/{pod_netns(pod)}",
                "CNI_IFNAME": "eth0",
                "CNI_ARGS": (
                    f"IgnoreUnknown=1;K8S_POD_NAMESPACE={meta['namespace']};"
                    f"K8S_POD_NAME={meta['name']};K8S_POD_INFRA_CONTAINER_ID={container_id(pod)};"
                    f"K8S_POD_UID={meta.get('uid', '')}"
                ),
            },
            self.cni_conf,
        )

    # --- pod lifecycle ----------------------------------------------------------------

    async def start_pod(self, pod: Obj) -> None:
        key = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
        ns = pod_netns(pod)
        subprocess.run(["ip", "netns", "add", ns], capture_output=True)
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], capture_output=True)
        code, result = await asyncio.to_thread(self._cni, "ADD", pod)
        if code != 0:
            log.error("CNI ADD for %s failed: %s", key, result)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            # As the kubelet retries sandbox creation: again in a few seconds.
            asyncio.get_running_loop().call_later(
                RETRY_SECONDS, lambda: asyncio.ensure_future(self._retry(key, pod))
            )
            await self._status(
                pod,
                {
                    "phase": "Pending",
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "False",
                            "reason": "NetworkNotReady",
                            "message": str(result.get("msg", result)),
                        }
                    ],
                },
            )
            return
        ip = result["ips"][0]["address"].split("/")[0]
        tcp: list[int] = []
        udp: list[int] = []
        for c in pod.get("spec", {}).get("containers") or []:
            for p in c.get("ports") or []:
                (udp if p.get("protocol", "TCP") == "UDP" else tcp).append(p["containerPort"])
        if pod.get("spec", {}).get("containers") and not tcp and not udp:
            tcp, udp = [80], [80]
        argv = ["ip", "netns", "exec", ns, sys.executable, "-m", "fyke.lab.podserver", key]
        for p in tcp:
            argv += ["--tcp", str(p)]
        for p in udp:
            argv += ["--udp", str(p)]
        server = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True
        )
        assert server.stdout is not None
        await asyncio.to_thread(server.stdout.readline)
        self.servers[key] = server
        self.running[key] = pod
        await self._status(
            pod,
            {
                "phase": "Running",
                "podIP": ip,
                "podIPs": [{"ip": ip}],
                "hostIP": "",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [
                    {
                        "name": c["name"],
                        "ready": True,
                        "restartCount": 0,
                        "image": c.get("image", ""),
                        "state": {"running": {}},
                    }
                    for c in pod.get("spec", {}).get("containers") or []
                ],
            },
        )
        log.info("pod %s running at %s", key, ip)

    async def _retry(self, key: str, pod: Obj) -> None:
        async with self.lock:
            if key not in self.running and key in self.wanted:
                await self.start_pod(self.wanted[key])

    async def stop_pod(self, pod: Obj) -> None:
        key = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
        server = self.servers.pop(key, None)
        if server is not None:
            server.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(server.wait, 10)
            if server.poll() is None:
                server.kill()
        self.running.pop(key, None)
        code, result = await asyncio.to_thread(self._cni, "DEL", pod)
        if code != 0:
            log.error("CNI DEL for %s failed: %s", key, result)
        net.kill_netns_processes(pod_netns(pod))
        subprocess.run(["ip", "netns", "del", pod_netns(pod)], capture_output=True)
        log.info("pod %s stopped", key)

    async def _status(self, pod: Obj, status: Obj) -> None:
        meta = pod["metadata"]
        with contextlib.suppress(Exception):
            await self.client.patch(
                self.pods.Status,
                meta["name"],
                {"status": status},
                namespace=meta["namespace"],
                patch_type=PatchType.MERGE,
            )

    async def on_change(self, change: Change) -> None:
        pod = change.object
        meta = pod["metadata"]
        key = f"{meta['namespace']}/{meta['name']}"
        node = pod.get("spec", {}).get("nodeName", "")
        async with self.lock:
            if change.type == "DELETED":
                self.wanted.pop(key, None)
                if key in self.running:
                    await self.stop_pod(self.running[key])
                return
            if node != self.node:
                return
            self.wanted[key] = pod
            current = self.running.get(key)
            if current is not None and current["metadata"].get("uid") != meta.get("uid"):
                await self.stop_pod(current)  # replaced by a new pod of the same name
                current = None
            if current is None:
                await self.start_pod(pod)

    def _gc(self, valid: list[Obj]) -> tuple[int, Obj]:
        """CNI GC as a runtime runs it after a restart: attachments of pods it no longer
        has go (their addresses, veths and ports)."""
        conf = json.loads(self.cni_conf)
        conf["cni.dev/valid-attachments"] = valid
        return self._exec_cni({"CNI_COMMAND": "GC"}, json.dumps(conf), timeout=120)

    async def run(self) -> None:
        # GC first, with the pods bound here now, and only then start pods: this kubelet
        # is the only caller of ADD on its node, so no ADD can race the GC.
        pods = [p.to_dict() async for p in self.client.list(self.pods, namespace="*")]
        valid = [
            {"containerID": container_id(p), "ifname": "eth0"}
            for p in pods
            if p.get("spec", {}).get("nodeName") == self.node
        ]
        code, result = await asyncio.to_thread(self._gc, valid)
        if code != 0:
            log.error("CNI GC failed: %s", result)
        await Reflector(self.client, resources.POD, self.on_change).run()

    async def shutdown(self) -> None:
        for pod in list(self.running.values()):
            await self.stop_pod(pod)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--node", required=True)
    ap.add_argument("--node-netns", default="")
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--cni-conf", required=True)
    ap.add_argument("--cni-bin", default=shutil.which("fyke-cni") or "fyke-cni")
    ap.add_argument("--state-dir", required=True)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    kubelet = Kubelet(args)

    async def go() -> None:
        import signal

        loop = asyncio.get_running_loop()
        task = asyncio.create_task(kubelet.run())
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        task.cancel()
        await kubelet.shutdown()

    asyncio.run(go())


if __name__ == "__main__":
    main()
