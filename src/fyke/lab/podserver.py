"""The server a lab pod runs: answers on every declared containerPort. TCP: accept,
write the pod's name, close. UDP: reply with the pod's name. Stdlib only, so it starts
fast inside the pod's network namespace.

Usage: python -m fyke.lab.podserver NAME [--tcp PORT]... [--udp PORT]...
"""

from __future__ import annotations

import argparse
import asyncio
import signal


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.transport is not None:
            self.transport.sendto(self.answer, addr)


async def serve(name: str, tcp: list[int], udp: list[int]) -> None:
    answer = name.encode()

    async def on_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(answer)
            await writer.drain()
        finally:
            writer.close()

    loop = asyncio.get_running_loop()
    servers = [await asyncio.start_server(on_tcp, "0.0.0.0", p, reuse_address=True) for p in tcp]
    for p in udp:
        await loop.create_datagram_endpoint(lambda: _Udp(answer), local_addr=("0.0.0.0", p))
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()
    for s in servers:
        s.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("--tcp", type=int, action="append", default=[])
    ap.add_argument("--udp", type=int, action="append", default=[])
    args = ap.parse_args()
    asyncio.run(serve(args.name, args.tcp, args.udp))


if __name__ == "__main__":
    main()
