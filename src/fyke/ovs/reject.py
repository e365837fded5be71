"""Reject on the wire: answer the packets that Reject rules send to the controller.

A Reject rule's flow ends in `controller(userdata=reject_userdata(rule_id))` (see
fyke.datapath.policy), so the packet is not forwarded and arrives here as NXT_PACKET_IN2.
The Rejector answers the SENDER:

- TCP: a RST from the destination (addresses, ports and MACs swapped). If the packet had
  ACK set the RST carries seq=its ack, otherwise seq=0 with ACK of seq + payload (+1 for
  SYN and FIN each), as RFC 9293 asks, so the sender's kernel accepts it (ECONNREFUSED).
- anything else (UDP, SCTP, ICMP queries, other protocols): ICMP destination unreachable,
  type 3 code 13 (communication administratively prohibited), from the destination
  address, quoting the original IP header (with options) and the first 8 bytes after it
  (the sender's kernel reports EHOSTUNREACH on a connected socket).

Never answered: TCP RSTs, ICMP errors (so a reply caught by a reject rule cannot start a
storm of generated packets), non-first fragments, packets from 0.0.0.0 or to/from
broadcast or multicast addresses, non-IPv4.

Delivery: a packet-out with in_port=CONTROLLER and actions=output:<the original
packet's in_port>, straight back out of the port the offending packet entered by; it
never goes through the pipeline, so it needs no mark and no policy can reject it again.
That is right for local pods (the common case, for egress and ingress rules), for
packets that came from the gateway (the node's kernel routes the reply: the node itself,
or a remote pod in noEncap mode) and for packets from the tunnel port, whose answer goes
back to the sending node (tun_dst = the packet's tun_src).

Storms: at most `rate` answers per second (token bucket of `burst`); the rest are
dropped and counted. Before that, the switch itself limits the packet-ins: policy flows
send them through OpenFlow meter PACKET_IN_METER (the agent creates it, 500 packets/s).
"""

from __future__ import annotations

import ipaddress
import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from os_ken.ofproto import ofproto_v1_5 as ofp  # type: ignore[import-untyped]
from os_ken.ofproto import ofproto_v1_5_parser as parser

from fyke.datapath.policy import USERDATA_REJECT
from fyke.ovs.openflow import OFConnection, PacketIn
from fyke.ovs.translate import DP

log = logging.getLogger("fyke.ovs.reject")

ETH_TYPE_IP = 0x0800
PROTO_ICMP = 1
PROTO_TCP = 6
ICMP_UNREACH = 3
ICMP_ADMIN_PROHIBITED = 13
ICMP_ERROR_TYPES = frozenset({3, 4, 5, 11, 12})  # unreach, quench, redirect, time, param
TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10
TTL = 64

_ETH = struct.Struct("!6s6sH")
_IP = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIBBHHH")
_USERDATA = struct.Struct("!BxxxI")


def reject_rule_id(userdata: bytes) -> int | None:
    """The rule id of a reject userdata (layout of policy.reject_userdata), else None."""
    if len(userdata) != _USERDATA.size:
        return None
    kind, rule_id = _USERDATA.unpack(userdata)
    return int(rule_id) if kind == USERDATA_REJECT else None


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of `data`."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return int(~s & 0xFFFF)


def _ip_header(src: bytes, dst: bytes, proto: int, payload_len: int) -> bytes:
    head = _IP.pack(0x45, 0, 20 + payload_len, 0, 0, TTL, proto, 0, src, dst)
    return head[:10] + struct.pack("!H", checksum(head)) + head[12:]


def _unusable(addr: bytes) -> bool:
    a = ipaddress.IPv4Address(addr)
    return a.is_multicast or a.is_unspecified or a == ipaddress.IPv4Address("255.255.255.255")


@dataclass(frozen=True, slots=True)
class _Ip:
    eth_src: bytes
    eth_dst: bytes
    header: bytes  # the IP header with options
    payload: bytes  # up to the IP total length (no Ethernet padding)
    proto: int
    src: bytes
    dst: bytes


def _parse(frame: bytes) -> _Ip | None:
    if len(frame) < _ETH.size + _IP.size:
        return None
    eth_dst, eth_src, eth_type = _ETH.unpack_from(frame)
    if eth_type != ETH_TYPE_IP:
        return None
    ip = frame[_ETH.size :]
    ver_ihl, _, total, _, frag, _, proto, _, src, dst = _IP.unpack_from(ip)
    ihl = (ver_ihl & 0xF) * 4
    if ver_ihl >> 4 != 4 or ihl < 20 or not ihl <= total <= len(ip):
        return None
    if frag & 0x1FFF:
        return None  # not the first fragment: no L4 header, and no ICMP error (RFC 1122)
    if _unusable(src) or _unusable(dst) or src == dst:
        return None
    return _Ip(eth_src, eth_dst, ip[:ihl], ip[ihl:total], proto, src, dst)


def _tcp_rst(pkt: _Ip) -> bytes | None:
    if len(pkt.payload) < _TCP.size:
        return None
    sport, dport, seq, ack, off, flags, *_ = _TCP.unpack_from(pkt.payload)
    if flags & TCP_RST:
        return None
    data_len = len(pkt.payload) - (off >> 4) * 4
    if data_len < 0:
        return None
    if flags & TCP_ACK:
        r_seq, r_ack, r_flags = ack, 0, TCP_RST
    else:
        seg_len = data_len + bool(flags & TCP_SYN) + bool(flags & TCP_FIN)
        r_seq, r_ack, r_flags = 0, (seq + seg_len) & 0xFFFFFFFF, TCP_RST | TCP_ACK
    tcp = _TCP.pack(dport, sport, r_seq, r_ack, 5 << 4, r_flags, 0, 0, 0)
    pseudo = pkt.dst + pkt.src + struct.pack("!BBH", 0, PROTO_TCP, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    return _ip_header(pkt.dst, pkt.src, PROTO_TCP, len(tcp)) + tcp


def _icmp_prohibited(pkt: _Ip) -> bytes | None:
    if pkt.proto == PROTO_ICMP and (not pkt.payload or pkt.payload[0] in ICMP_ERROR_TYPES):
        return None
    body = struct.pack("!BBHI", ICMP_UNREACH, ICMP_ADMIN_PROHIBITED, 0, 0)
    body += pkt.header + pkt.payload[:8]
    body = body[:2] + struct.pack("!H", checksum(body)) + body[4:]
    return _ip_header(pkt.dst, pkt.src, PROTO_ICMP, len(body)) + body


def build_reject(frame: bytes) -> bytes | None:
    """The Ethernet frame that rejects `frame` towards its sender, or None when `frame`
    must not be answered (see the module doc)."""
    pkt = _parse(frame)
    if pkt is None:
        return None
    ip = _tcp_rst(pkt) if pkt.proto == PROTO_TCP else _icmp_prohibited(pkt)
    if ip is None:
        return None
    return _ETH.pack(pkt.eth_src, pkt.eth_dst, ETH_TYPE_IP) + ip


class TokenBucket:
    """At most `burst` at once, refilled at `rate` per second."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate and burst must be positive")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


@dataclass(slots=True)
class RejectStats:
    answered: int = 0
    rate_limited: int = 0
    not_answered: int = 0  # RSTs, ICMP errors, broadcasts, fragments, non-IPv4, no in_port
    failed: int = 0


def _tunnel_back(pin: PacketIn) -> list[Any]:
    """A packet that came from a tunnel is answered to the node that sent it."""
    src = pin.match.get("tun_ipv4_src") if pin.match is not None else None
    return [parser.OFPActionSetField(tun_ipv4_dst=src)] if src else []


class Rejector:
    """Answers reject packet-ins on one OpenFlow connection.

    `rejector = await Rejector.start(conn)`, `rejector.stop()` when done. Other packet-ins
    (no reject userdata) are left alone; the connection may be shared with the reconciler.
    """

    def __init__(self, conn: OFConnection, *, rate: float = 500.0, burst: int = 500) -> None:
        self.conn = conn
        self.bucket = TokenBucket(rate, burst)
        self.stats = RejectStats()
        self._remove: Callable[[], None] | None = None

    @classmethod
    async def start(cls, conn: OFConnection, *, rate: float = 500.0, burst: int = 500) -> Rejector:
        self = cls(conn, rate=rate, burst=burst)
        self._remove = conn.add_packet_in_handler(self.handle)
        await conn.enable_packet_in()
        return self

    def stop(self) -> None:
        if self._remove is not None:
            self._remove()
            self._remove = None

    def handle(self, pin: PacketIn) -> None:
        rule_id = reject_rule_id(pin.userdata)
        if rule_id is None:
            return
        if not self.bucket.take():
            self.stats.rate_limited += 1
            return
        reply = build_reject(pin.data)
        if reply is None or pin.in_port in (ofp.OFPP_ANY, ofp.OFPP_CONTROLLER, 0):
            self.stats.not_answered += 1
            return
        try:
            self.conn.send(
                parser.OFPPacketOut(
                    DP,
                    buffer_id=ofp.OFP_NO_BUFFER,
                    match=parser.OFPMatch(in_port=ofp.OFPP_CONTROLLER),
                    actions=[*_tunnel_back(pin), parser.OFPActionOutput(pin.in_port)],
                    data=reply,
                )
            )
        except (OSError, RuntimeError) as e:
            self.stats.failed += 1
            log.warning("reject for rule %d: packet-out failed: %s", rule_id, e)
            return
        self.stats.answered += 1
