"""The policy audit log: one line per packet that a rule with enableLogging decided.

Such a rule's flow sends a copy of the packet to the agent (userdata USERDATA_LOG and the
rule id; a Reject rule's own packet-in serves), and the agent writes:

    2026-11-26T09:55:01.123Z ingress Reject AntreaClusterNetworkPolicy quarantine-z-c
        tier=securityops rule=reject-all label=- TCP 10.244.1.2:40368 > 10.244.3.2:80 len=60

(one line; namespaced policies are written NAMESPACE/NAME). Lines are rate-limited in the
agent (token bucket; suppressed lines are counted and reported in the next line written).
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import struct
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from fyke.datapath.policy import USERDATA_LOG, USERDATA_REJECT
from fyke.ovs.openflow import PacketIn
from fyke.ovs.reject import TokenBucket
from fyke.policy.model import Rule

log = logging.getLogger("fyke.agent.audit")
_USERDATA = struct.Struct("!BxxxI")
PROTOCOLS = {6: "TCP", 17: "UDP", 132: "SCTP", 1: "ICMP"}


def five_tuple(frame: bytes) -> str:
    """'TCP 10.0.0.1:1234 > 10.0.0.2:80 len=60' from an Ethernet frame ('?' if not IPv4)."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return "non-IPv4"
    ip = frame[14:]
    ihl = (ip[0] & 0x0F) * 4
    proto = ip[9]
    total = int.from_bytes(ip[2:4], "big")
    src, dst = ipaddress.IPv4Address(ip[12:16]), ipaddress.IPv4Address(ip[16:20])
    name = PROTOCOLS.get(proto, str(proto))
    if proto in (6, 17, 132) and len(ip) >= ihl + 4:
        sport, dport = struct.unpack("!HH", ip[ihl : ihl + 4])
        return f"{name} {src}:{sport} > {dst}:{dport} len={total}"
    return f"{name} {src} > {dst} len={total}"


def line(rule: Rule, frame: bytes, now: datetime.datetime) -> str:
    p = rule.policy
    name = f"{p.namespace}/{p.name}" if p.namespace else p.name
    return (
        f"{now.strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}Z {rule.direction.value.lower()} "
        f"{rule.action_text} {p.kind} {name} tier={p.tier or '-'} rule={rule.name or rule.index} "
        f"label={rule.log_label or '-'} {five_tuple(frame)}"
    )


class AuditLog:
    """`handle` is a packet-in handler; `rules(id)` looks a rule up in the compiled
    policies the flows came from."""

    def __init__(
        self,
        path: Path,
        rules: Callable[[int], Rule | None],
        *,
        rate: float = 1000.0,
        burst: int = 1000,
    ) -> None:
        self.path = path
        self.rules = rules
        self.bucket = TokenBucket(rate, burst)
        self.suppressed = 0
        self.written = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: TextIO = path.open("a", buffering=1)  # line-buffered

    def handle(self, pin: PacketIn) -> None:
        if len(pin.userdata) != _USERDATA.size:
            return
        kind, rule_id = _USERDATA.unpack(pin.userdata)
        if kind not in (USERDATA_LOG, USERDATA_REJECT):
            return
        rule = self.rules(rule_id)
        if rule is None or not rule.logged:
            return
        if not self.bucket.take():
            self.suppressed += 1
            return
        text = line(rule, pin.data, datetime.datetime.now(datetime.UTC))
        if self.suppressed:
            text += f" (after {self.suppressed} lines suppressed by the rate limit)"
            self.suppressed = 0
        self._file.write(text + "\n")
        self.written += 1

    def close(self) -> None:
        self._file.close()
