"""The probe a lab pod runs against its peers, from inside its network namespace.

Reads targets as JSON lines {"to": KEY, "ip": IP, "port": N, "protocol": "TCP"|"UDP"} on
stdin, probes them concurrently and prints one JSON line per target with the verdict:
allow (connected / answered), drop (timed out), reject (refused, reset or ICMP
unreachable). Stdlib only.

Usage: python -m fyke.lab.prober [--timeout SECONDS]
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import socket
import sys
from typing import Any

REJECTING = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.EACCES,
    errno.EPERM,
}


async def _tcp(ip: str, port: int, timeout: float) -> str:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), timeout)
    except TimeoutError:
        return "drop"
    except OSError as e:
        return "reject" if e.errno in REJECTING else "drop"
    writer.close()
    return "allow"


async def _udp(ip: str, port: int, timeout: float) -> str:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        sock.connect((ip, port))  # connected: ICMP port unreachable becomes ECONNREFUSED
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            try:
                sock.send(b"probe")
                await asyncio.wait_for(loop.sock_recv(sock, 512), min(0.5, timeout))
                return "allow"
            except TimeoutError:
                continue  # the first datagram may race ARP; send again
            except OSError as e:
                return "reject" if e.errno in REJECTING else "drop"
        return "drop"
    finally:
        sock.close()


async def probe(target: dict[str, Any], timeout: float) -> dict[str, Any]:
    proto = target["protocol"]
    if proto == "TCP":
        verdict = await _tcp(target["ip"], target["port"], timeout)
    elif proto == "UDP":
        verdict = await _udp(target["ip"], target["port"], timeout)
    else:
        verdict = "unsupported"
    return {**target, "verdict": verdict}


async def run(timeout: float) -> None:
    targets = [json.loads(line) for line in sys.stdin if line.strip()]
    results = await asyncio.gather(*(probe(t, timeout) for t in targets))
    for r in results:
        print(json.dumps(r))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeout", type=float, default=2.0)
    asyncio.run(run(ap.parse_args().timeout))


if __name__ == "__main__":
    main()
