"""Reject on the wire: packets built for the sender, and real pods on a real OVS bridge.

The OVS test installs the pod pipeline plus an ingress Reject rule for 80/TCP and 81/UDP
to pod b, runs a Rejector on the test's OpenFlow connection, and connects from pod a:
80/TCP fails at once with ECONNREFUSED, 81/UDP with EHOSTUNREACH (ICMP 3/13; a missing
listener would give ECONNREFUSED instead, and b does listen), 8080/TCP and 82/UDP work.
"""

from __future__ import annotations

import asyncio
import ipaddress
import struct
import sys
import textwrap

from fyke.api.core import Direction, Protocol
from fyke.datapath.fields import Feature, make_cookie
from fyke.datapath.policy import NodePolicy, RealizedRule, Service, policy_flows, reject_userdata
from fyke.ovs.openflow import PacketIn
from fyke.ovs.reconcile import reconcile
from fyke.ovs.reject import Rejector, TokenBucket, build_reject, checksum, reject_rule_id
from fyke.policy.model import Action, Layer
from tests.datapath.conftest import PODS, Node

A_MAC, B_MAC = bytes.fromhex("02000a0a0002"), bytes.fromhex("02000a0a0003")
A_IP, B_IP = ipaddress.IPv4Address("10.10.0.2").packed, ipaddress.IPv4Address("10.10.0.3").packed


def ip_packet(proto: int, l4: bytes, *, frag: int = 0, dst: bytes = B_IP) -> bytes:
    head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 7, frag, 64, proto, 0, A_IP, dst)
    head = head[:10] + struct.pack("!H", checksum(head)) + head[12:]
    eth = B_MAC + A_MAC + b"\x08\x00"
    return eth + head + l4 + b"\0" * 6  # Ethernet padding must not count as payload


def tcp(flags: int, seq: int = 1000, ack: int = 0, data: bytes = b"") -> bytes:
    return struct.pack("!HHIIBBHHH", 40000, 80, seq, ack, 5 << 4, flags, 1024, 0, 0) + data


def l4_checksum_ok(frame: bytes) -> bool:
    ip = frame[14:]
    ihl = (ip[0] & 0xF) * 4
    total = struct.unpack("!H", ip[2:4])[0]
    if checksum(ip[:ihl]) != 0:
        return False
    body = ip[ihl:total]
    if ip[9] == 6:
        body = ip[12:20] + struct.pack("!BBH", 0, 6, len(body)) + body
    return checksum(body) == 0


# --- pure -----------------------------------------------------------------------------


def test_reject_userdata_roundtrip() -> None:
    assert reject_rule_id(reject_userdata(7)) == 7
    assert reject_rule_id(b"\x02\0\0\0\0\0\0\x07") is None
    assert reject_rule_id(b"") is None


def test_tcp_syn_gets_rst_ack_of_seq_plus_one() -> None:
    frame = ip_packet(6, tcp(0x02, seq=0xFFFFFFFF))
    reply = build_reject(frame)
    assert reply is not None and l4_checksum_ok(reply)
    assert reply[:6] == A_MAC and reply[6:12] == B_MAC
    ip = reply[14:]
    assert ip[12:16] == B_IP and ip[16:20] == A_IP and ip[9] == 6
    sport, dport, seq, ack, _, flags = struct.unpack("!HHIIBB", ip[20:34])
    assert (sport, dport, seq, ack, flags) == (80, 40000, 0, 0, 0x14)  # seq+1 wraps


def test_tcp_with_ack_gets_rst_at_its_ack() -> None:
    reply = build_reject(ip_packet(6, tcp(0x18, seq=5, ack=777, data=b"hello")))
    assert reply is not None and l4_checksum_ok(reply)
    _, _, seq, ack, _, flags = struct.unpack("!HHIIBB", reply[34:48])
    assert (seq, ack, flags) == (777, 0, 0x04)


def test_udp_gets_icmp_prohibited_quoting_header_and_8_bytes() -> None:
    udp = struct.pack("!HHHH", 40000, 81, 8 + 20, 0) + b"x" * 20
    frame = ip_packet(17, udp)
    reply = build_reject(frame)
    assert reply is not None and l4_checksum_ok(reply)
    ip = reply[14:]
    assert ip[9] == 1 and ip[12:16] == B_IP and ip[16:20] == A_IP
    assert ip[20:22] == bytes([3, 13])
    assert ip[28:] == frame[14 : 14 + 20 + 8]


def test_icmp_echo_is_answered_but_no_error_is() -> None:
    echo = struct.pack("!BBHHH", 8, 0, 0, 1, 1)
    assert build_reject(ip_packet(1, echo)) is not None
    for generated in (
        ip_packet(6, tcp(0x04)),  # RST
        ip_packet(6, tcp(0x14)),  # RST+ACK
        ip_packet(1, struct.pack("!BBHI", 3, 13, 0, 0) + b"\0" * 28),  # ICMP error
        ip_packet(17, b"\0" * 8, frag=5),  # not the first fragment
        ip_packet(17, b"\0" * 8, dst=bytes([224, 0, 0, 1])),  # multicast
        b"\xff" * 12 + b"\x08\x06" + b"\0" * 28,  # ARP
    ):
        assert build_reject(generated) is None


def test_token_bucket() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=10, burst=3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    now[0] = 0.1
    assert [bucket.take() for _ in range(2)] == [True, False]


class _FakeConn:
    def __init__(self) -> None:
        self.sent: list[object] = []

    def send(self, msg: object) -> int:
        self.sent.append(msg)
        return 1


def test_rejector_rate_limits_and_ignores_other_packet_ins() -> None:
    conn = _FakeConn()
    rejector = Rejector(conn, rate=1, burst=2)  # type: ignore[arg-type]
    syn = ip_packet(6, tcp(0x02))

    def pin(userdata: bytes) -> PacketIn:
        return PacketIn(
            data=syn, in_port=3, table_id=70, cookie=0, reason=1, userdata=userdata, match=None
        )

    rejector.handle(pin(b"other"))
    for _ in range(5):
        rejector.handle(pin(reject_userdata(9)))
    assert len(conn.sent) == 2
    assert (rejector.stats.answered, rejector.stats.rate_limited) == (2, 3)
    out = conn.sent[0]
    assert out.actions[0].port == 3 and bytes(out.data) == build_reject(syn)  # type: ignore[attr-defined]


# --- real OVS -------------------------------------------------------------------------

SERVER = textwrap.dedent(
    """
    import select, socket
    socks = []
    for kind, port in (("tcp", 80), ("tcp", 8080), ("udp", 81), ("udp", 82)):
        s = socket.socket(type=socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        if kind == "tcp":
            s.listen()
        socks.append((kind, s))
    print("ready", flush=True)
    while True:
        for kind, s in socks:
            if not select.select([s], [], [], 0)[0]:
                continue
            if kind == "udp":
                data, peer = s.recvfrom(2048)
                s.sendto(data, peer)
            else:
                c, _ = s.accept()
                c.sendall(c.recv(100))
                c.close()
        select.select([s for _, s in socks], [], [], 0.5)
    """
)

CLIENT = textwrap.dedent(
    """
    import errno, socket, sys, time
    kind, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    start = time.monotonic()
    try:
        if kind == "tcp":
            s = socket.create_connection((host, port), timeout=3)
        else:
            s = socket.socket(type=socket.SOCK_DGRAM)
            s.settimeout(3)
            s.connect((host, port))
        s.send(b"ping")
        got = s.recv(100)
        result = "ok" if got == b"ping" else f"bad {got!r}"
    except TimeoutError:
        result = "timeout"
    except OSError as e:
        result = errno.errorcode.get(e.errno or 0, str(e))
    print(result, round(time.monotonic() - start, 3))
    """
)


async def _in_pod(node: Node, pod: str, code: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", node.pod_ns(pod), sys.executable, "-c", code, *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def _probe(node: Node, kind: str, port: int) -> tuple[str, float]:
    proc = await _in_pod(node, "a", CLIENT, kind, PODS["b"][2], str(port))
    out, err = await asyncio.wait_for(proc.communicate(), 10)
    result, elapsed = out.decode().split()
    return result, float(elapsed)


def test_reject_tcp_and_udp_between_real_pods(node: Node) -> None:
    b = node.pods["b"]
    rule = RealizedRule(
        rule_id=42,
        direction=Direction.INGRESS,
        layer=Layer.ADMIN,
        order=(0,),
        action=Action.REJECT,
        applied=frozenset({b.ofport}),
        peers=None,
        services=(
            Service(protocol=Protocol.TCP, start=80, end=80),
            Service(protocol=Protocol.UDP, start=81, end=81),
        ),
    )
    policy = policy_flows(NodePolicy(rules=(rule,)), round=node.round)

    async def run() -> dict[tuple[str, int], tuple[str, float]]:
        await reconcile(node.conn, node.desired(round=node.round) + policy)
        rejector = await Rejector.start(node.conn)
        pins: list[PacketIn] = []
        remove = node.conn.add_packet_in_handler(pins.append)
        server = await _in_pod(node, "b", SERVER)
        try:
            assert server.stdout is not None
            line = await asyncio.wait_for(server.stdout.readline(), 10)
            assert line.strip() == b"ready"
            cases = [("tcp", 80), ("udp", 81), ("tcp", 8080), ("udp", 82)]
            results = await asyncio.gather(*(_probe(node, k, p) for k, p in cases))
            assert rejector.stats.answered >= 2, rejector.stats
            assert {(p.in_port, p.userdata, p.cookie) for p in pins} == {
                (
                    node.pods["a"].ofport,
                    reject_userdata(42),
                    make_cookie(round=node.round, feature=Feature.POLICY, obj=42),
                )
            }
            return dict(zip(cases, results, strict=True))
        finally:
            rejector.stop()
            remove()
            if server.returncode is None:
                server.kill()
            await server.wait()
            await reconcile(node.conn, node.desired(round=node.round))

    got = node.run(run())
    assert got[("tcp", 80)][0] == "ECONNREFUSED", got
    assert got[("udp", 81)][0] == "EHOSTUNREACH", got
    assert got[("tcp", 8080)][0] == "ok", got
    assert got[("udp", 82)][0] == "ok", got
    assert got[("tcp", 80)][1] < 1 and got[("udp", 81)][1] < 1, got  # no timeout, no retry
