"""Tiny network tools run inside pod namespaces (`ip netns exec NS python probe.py ...`).

stdlib only; every command has a timeout and prints one line per result.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import sys
import time


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def ping(dst: str, count: int = 3, timeout: float = 2.0) -> int:
    """ICMP echo; prints 'reply N' per answer; exit 0 if all were answered."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    ident = os.getpid() & 0xFFFF
    got = 0
    for seq in range(count):
        body = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"fyke-ping"
        body = body[:2] + struct.pack("!H", checksum(body)) + body[4:]
        sock.sendto(body, (dst, 0))
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([sock], [], [], left)[0]:
                break
            pkt, (src, _) = sock.recvfrom(2048)
            ihl = (pkt[0] & 0xF) * 4
            typ, _, _, rid, rseq = struct.unpack("!BBHHH", pkt[ihl : ihl + 8])
            if src == dst and typ == 0 and rid == ident and rseq == seq:
                print(f"reply {seq}", flush=True)
                got += 1
                break
    return 0 if got == count else 1


def udp_listen(addr: str, port: int, seconds: float) -> int:
    """Print every datagram received on addr:port for `seconds`; 'ready' once bound."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((addr, port))
    print("ready", flush=True)
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if select.select([sock], [], [], left)[0]:
            data, _ = sock.recvfrom(2048)
            print(data.decode(errors="replace"), flush=True)
    return 0


def raw_send(ifname: str, frame_hex: str) -> int:
    """Send one Ethernet frame as is (AF_PACKET), whatever its source addresses."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((ifname, 0))
    sock.send(bytes.fromhex(frame_hex))
    return 0


def tcp_echo_server(addr: str, port: int, seconds: float) -> int:
    """Echo every connection (one at a time) until `seconds` pass; 'ready' once listening."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, port))
    srv.listen()
    print("ready", flush=True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not select.select([srv], [], [], 0.2)[0]:
            continue
        conn, _ = srv.accept()
        conn.settimeout(max(0.1, deadline - time.monotonic()))
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:
                pass
    return 0


def tcp_client(addr: str, port: int) -> int:
    """Connect, then for each stdin line: send it, print the echo. 'connected' first."""
    sock = socket.create_connection((addr, port), timeout=5)
    print("connected", flush=True)
    for line in sys.stdin:
        msg = line.strip().encode()
        size = int(msg[5:]) if msg.startswith(b"bulk:") else 0
        payload = os.urandom(size) if size else msg
        sock.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
        print("echo-ok" if got == payload else f"echo-bad {len(got)}", flush=True)
    return 0


def main(argv: list[str]) -> int:
    cmd, *args = argv
    if cmd == "ping":
        return ping(args[0], int(args[1]) if len(args) > 1 else 3)
    if cmd == "udp-listen":
        return udp_listen(args[0], int(args[1]), float(args[2]))
    if cmd == "raw-send":
        return raw_send(args[0], args[1])
    if cmd == "tcp-echo-server":
        return tcp_echo_server(args[0], int(args[1]), float(args[2]))
    if cmd == "tcp-client":
        return tcp_client(args[0], int(args[1]))
    raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
