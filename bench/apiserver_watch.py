"""The lab API server under load: list 10k pods; 1k updates fanned out to 10 watchers.

Method: start `fykectl lab apiserver` (a separate process, tracked by PID), create N pods
over HTTPS, then
- list: GET all pods, repeated; median wall time. Baseline, in this script: encoding and
  decoding the same JSON body (the floor any JSON API pays for that list).
- fan-out: W watchers hold watches open; the script patches one pod U times, each patch
  carrying its send time; every watcher records the delay to each MODIFIED it receives.
  Reported: deliveries per second (U*W over the time from first patch to last delivery),
  p50/p99 delivery latency. Baseline: the same U patches with no watcher (write cost).
- memory: the server's peak RSS (VmHWM) after all of it.

Usage: python bench/apiserver_watch.py [--pods 10000] [--updates 1000] [--watchers 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml


class Server:
    def __init__(self, data_dir: Path) -> None:
        fykectl = Path(sys.executable).with_name("fykectl")
        self.proc = subprocess.Popen(
            [
                str(fykectl),
                "lab",
                "apiserver",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                str(data_dir),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        self.base = line.split("listening on ")[1].split(";")[0]
        cfg = yaml.safe_load((data_dir / "kubeconfig").read_text())
        self.headers = {"Authorization": f"Bearer {cfg['users'][0]['user']['token']}"}
        self.ssl = ssl.create_default_context(cafile=str(data_dir / "ca.crt"))

    def peak_rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=10)


def _pod(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"pod-{i}", "labels": {"app": f"app-{i % 10}"}},
        "spec": {
            "nodeName": f"node-{i % 3}",
            "containers": [
                {"name": "c", "image": "agnhost", "ports": [{"containerPort": 80, "name": "http"}]}
            ],
        },
    }


async def _create(s: aiohttp.ClientSession, srv: Server, n: int) -> None:
    sem = asyncio.Semaphore(16)

    async def one(i: int) -> None:
        async with (
            sem,
            s.post(f"{srv.base}/api/v1/namespaces/default/pods", json=_pod(i), ssl=srv.ssl) as r,
        ):
            assert r.status == 201, await r.text()

    await asyncio.gather(*(one(i) for i in range(n)))


async def _list(s: aiohttp.ClientSession, srv: Server, rounds: int) -> tuple[float, float]:
    times = []
    body = b""
    for _ in range(rounds):
        t0 = time.perf_counter()
        async with s.get(f"{srv.base}/api/v1/pods", ssl=srv.ssl) as r:
            body = await r.read()
        json.loads(body)
        times.append(time.perf_counter() - t0)
    items = json.loads(body)["items"]
    base = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        json.loads(json.dumps({"items": items}))
        base.append(time.perf_counter() - t0)
    return statistics.median(times), statistics.median(base)


async def _patches(s: aiohttp.ClientSession, srv: Server, updates: int) -> float:
    url = f"{srv.base}/api/v1/namespaces/default/pods/pod-0"
    hdr = {"Content-Type": "application/merge-patch+json"}
    t0 = time.perf_counter()
    for i in range(updates):
        body = {"metadata": {"annotations": {"sent": str(time.perf_counter()), "i": str(i)}}}
        async with s.patch(url, json=body, headers=hdr, ssl=srv.ssl) as r:
            assert r.status == 200, await r.text()
    return time.perf_counter() - t0


async def _watcher(
    s: aiohttp.ClientSession,
    srv: Server,
    rv: str,
    want: int,
    delays: list[float],
    ready: asyncio.Event,
) -> float:
    url = (
        f"{srv.base}/api/v1/namespaces/default/pods?watch=1&resourceVersion={rv}"
        "&fieldSelector=metadata.name%3Dpod-0"
    )
    got = 0
    async with s.get(url, ssl=srv.ssl, timeout=aiohttp.ClientTimeout(total=None)) as r:
        ready.set()
        async for line in r.content:
            ev = json.loads(line)
            if ev["type"] != "MODIFIED":
                continue
            delays.append(
                time.perf_counter() - float(ev["object"]["metadata"]["annotations"]["sent"])
            )
            got += 1
            if got == want:
                return time.perf_counter()
    return time.perf_counter()


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="fyke-bench-") as tmp:
        srv = Server(Path(tmp))
        try:
            async with aiohttp.ClientSession(headers=srv.headers) as s:
                t0 = time.perf_counter()
                await _create(s, srv, args.pods)
                created = time.perf_counter() - t0
                listed, floor = await _list(s, srv, 5)
                write_only = await _patches(s, srv, args.updates)
                async with s.get(
                    f"{srv.base}/api/v1/namespaces/default/pods/pod-0", ssl=srv.ssl
                ) as r:
                    rv = (await r.json())["metadata"]["resourceVersion"]
                delays: list[float] = []
                readies = [asyncio.Event() for _ in range(args.watchers)]
                watchers = [
                    asyncio.create_task(_watcher(s, srv, rv, args.updates, delays, readies[i]))
                    for i in range(args.watchers)
                ]
                await asyncio.gather(*(e.wait() for e in readies))
                t0 = time.perf_counter()
                await _patches(s, srv, args.updates)
                ends = await asyncio.gather(*watchers)
                fanout = max(ends) - t0
        finally:
            peak = srv.peak_rss_mib()
            srv.stop()
    delays.sort()
    n = len(delays)
    print(f"pods {args.pods}, updates {args.updates}, watchers {args.watchers}")
    print(
        f"create {args.pods} pods (16 in flight): {created:.1f} s " f"({args.pods / created:.0f}/s)"
    )
    print(
        f"list {args.pods} pods: {listed * 1000:.0f} ms (median of 5); JSON encode+decode "
        f"of the same items in this process: {floor * 1000:.0f} ms; ratio "
        f"{listed / floor:.1f}x"
    )
    print(
        f"{args.updates} updates, no watcher: {write_only:.2f} s "
        f"({args.updates / write_only:.0f}/s)"
    )
    print(
        f"{args.updates} updates to {args.watchers} watchers: {n} deliveries in "
        f"{fanout:.2f} s = {n / fanout:.0f} events/s; latency p50 "
        f"{delays[n // 2] * 1000:.1f} ms, p99 {delays[int(n * 0.99) - 1] * 1000:.1f} ms; "
        f"fan-out costs {fanout / write_only:.2f}x the writes alone"
    )
    print(f"server peak RSS: {peak:.0f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=10000)
    ap.add_argument("--updates", type=int, default=1000)
    ap.add_argument("--watchers", type=int, default=10)
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
