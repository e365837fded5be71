"""`fykectl lab probe`: real packets between every ordered pair of running pods, reported
in the same JSON as `fykectl policy matrix`."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from fyke.lab.kubelet import pod_netns

Obj = dict[str, Any]
PROBEABLE = ("TCP", "UDP")


async def _probe_from(src: Obj, targets: list[Obj], timeout: float) -> list[Obj]:
    proc = await asyncio.create_subprocess_exec(
        "ip",
        "netns",
        "exec",
        pod_netns(src),
        sys.executable,
        "-m",
        "fyke.lab.prober",
        "--timeout",
        str(timeout),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate("\n".join(json.dumps(t) for t in targets).encode())
    if proc.returncode != 0:
        raise RuntimeError(f"prober in {pod_netns(src)} failed: {err.decode().strip()}")
    return [json.loads(line) for line in out.decode().splitlines() if line.strip()]


async def probe(
    pods: list[Obj], ports: list[tuple[int, str]], timeout: float = 2.0, parallel: int = 8
) -> dict[str, Any]:
    """pods: Pod objects (running, with status.podIP). ports: (number, protocol)."""
    keys = [f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in pods]
    wanted = [(n, proto) for n, proto in ports if proto in PROBEABLE]
    skipped = {
        f"{n}/{proto}": "SCTP sockets are not available in this kernel"
        for n, proto in ports
        if proto not in PROBEABLE
    }
    sem = asyncio.Semaphore(parallel)

    async def one(i: int) -> list[Obj]:
        targets = [
            {"to": keys[j], "ip": pods[j]["status"]["podIP"], "port": n, "protocol": proto}
            for j in range(len(pods))
            if j != i
            for n, proto in wanted
        ]
        async with sem:
            return await _probe_from(pods[i], targets, timeout)

    results = await asyncio.gather(*(one(i) for i in range(len(pods))))
    matrix: dict[str, dict[str, dict[str, str]]] = {}
    for i, rows in enumerate(results):
        row = matrix.setdefault(keys[i], {})
        for r in rows:
            row.setdefault(r["to"], {})[f"{r['port']}/{r['protocol']}"] = r["verdict"]
    out: dict[str, Any] = {
        "ports": [f"{n}/{proto}" for n, proto in wanted],
        "pods": keys,
        "matrix": matrix,
    }
    if skipped:
        out["skipped"] = skipped
    return out
