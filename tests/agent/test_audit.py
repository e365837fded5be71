"""Audit log lines: the rule behind a packet and its 5-tuple, rate-limited."""

from __future__ import annotations

import struct
from pathlib import Path

from fyke.agent.audit import AuditLog, five_tuple
from fyke.api.load import load_texts
from fyke.datapath.policy import log_userdata, reject_userdata
from fyke.ovs.openflow import PacketIn
from fyke.policy.compile import compile_policies

POLICY = """
apiVersion: crd.antrea.io/v1beta1
kind: NetworkPolicy
metadata: {name: web, namespace: x}
spec:
  priority: 1
  appliedTo: [{podSelector: {}}]
  ingress:
  - name: keep-out
    action: Drop
    enableLogging: true
    logLabel: lbl
  - name: quiet
    action: Allow
"""


def _frame(proto: int = 6) -> bytes:
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, proto, 0, bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    )
    return b"\x00" * 12 + b"\x08\x00" + ip + struct.pack("!HH", 40000, 80) + b"\x00" * 16


def _pin(userdata: bytes) -> PacketIn:
    return PacketIn(
        data=_frame(), in_port=3, table_id=70, cookie=0, reason=0, userdata=userdata, match=None
    )


def test_five_tuple() -> None:
    assert five_tuple(_frame()) == "TCP 10.0.0.1:40000 > 10.0.0.2:80 len=40"
    assert five_tuple(_frame(17)).startswith("UDP ")
    assert five_tuple(b"\x00" * 60) == "non-IPv4"


def test_logged_rules_write_one_line_each(tmp_path: Path) -> None:
    rules = {r.id: r for r in compile_policies(load_texts([("test", POLICY)])).rules}
    logged = next(r for r in rules.values() if r.name == "keep-out")
    quiet = next(r for r in rules.values() if r.name == "quiet")
    path = tmp_path / "np.log"
    audit = AuditLog(path, rules.get, rate=1, burst=2)
    audit.handle(_pin(log_userdata(logged.id)))
    audit.handle(_pin(reject_userdata(quiet.id)))  # not logged: nothing
    audit.handle(_pin(log_userdata(9999)))  # unknown rule: nothing
    audit.handle(_pin(b"junk"))
    audit.handle(_pin(log_userdata(logged.id)))
    audit.handle(_pin(log_userdata(logged.id)))  # over the burst: suppressed
    audit.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and audit.suppressed == 1
    assert lines[0].endswith(
        "Z ingress Drop NetworkPolicy x/web tier=application rule=keep-out label=lbl "
        "TCP 10.0.0.1:40000 > 10.0.0.2:80 len=40"
    )
