"""Pod connectivity on a real OVS bridge (userspace datapath) with real packets."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import re
import select
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from os_ken.ofproto import ofproto_v1_5 as ofp  # type: ignore[import-untyped]
from os_ken.ofproto import ofproto_v1_5_parser as parser

from fyke.datapath import tables
from fyke.datapath.fields import Feature, cookie_round, make_cookie
from fyke.datapath.flow import Drop, Flow, Goto
from fyke.datapath.pod import PodPort
from fyke.ovs import ovsdb, translate
from fyke.ovs.encode import FlowEncoder
from fyke.ovs.openflow import OpenFlowError
from fyke.ovs.reconcile import reconcile
from tests.datapath.conftest import Node, sh
from tests.datapath.probe import checksum

PROBE = Path(__file__).with_name("probe.py")


def in_pod(node: Node, pod: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", node.pod_ns(pod), sys.executable, str(PROBE), *args]


@contextlib.contextmanager
def spawn(argv: list[str]) -> Iterator[subprocess.Popen[bytes]]:
    """A child process, killed by PID when the block ends."""
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=5)
        for f in (proc.stdin, proc.stdout, proc.stderr):
            if f is not None:
                f.close()


def readline(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> str:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    out = b""
    deadline = time.monotonic() + timeout
    while not out.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError(f"no line from {proc.args} (got {out!r})")
        chunk = os.read(fd, 1)
        if not chunk:
            stderr = proc.stderr.read().decode() if proc.stderr else ""
            raise EOFError(f"{proc.args} ended (got {out!r}): {stderr}")
        out += chunk
    return out.decode().strip()


def send_line(proc: subprocess.Popen[bytes], line: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(line.encode() + b"\n")
    proc.stdin.flush()


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def udp_frame(
    *, src_mac: str, dst_mac: str, src_ip: str, dst_ip: str, port: int, payload: bytes
) -> bytes:
    udp = struct.pack("!HHHH", 40000, port, 8 + len(payload), 0) + payload
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(udp),
        1,
        0,
        64,
        17,
        0,
        ipaddress.IPv4Address(src_ip).packed,
        ipaddress.IPv4Address(dst_ip).packed,
    )
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return mac_bytes(dst_mac) + mac_bytes(src_mac) + b"\x08\x00" + ip + udp


def traced_tables(trace: str) -> list[str]:
    """Names of the tables an ofproto/trace walked through, in order."""
    names = []
    for m in re.finditer(r"^\s*(\d+)\. ", trace, re.M):
        table = tables.by_id(int(m.group(1)))
        names.append(table.name if table else m.group(1))
    return names


def installed_cookies(node: Node) -> list[int]:
    return sorted(d.cookie for d in node.run(node.conn.dump_flows()))


def test_ping_between_pods_and_to_gateway(node: Node) -> None:
    b = node.pods["b"]
    for pod, dst in (("a", b.ip), ("b", node.pods["a"].ip), ("a", node.gateway.ip)):
        out = subprocess.run(in_pod(node, pod, "ping", dst, "3"), capture_output=True, timeout=15)
        assert out.returncode == 0, f"ping {pod} -> {dst}: {out.stdout!r} {out.stderr!r}"


def test_tcp_between_pods(node: Node) -> None:
    b = node.pods["b"]
    with spawn(in_pod(node, "b", "tcp-echo-server", b.ip, "5001", "15")) as server:
        assert readline(server) == "ready"
        with spawn(in_pod(node, "a", "tcp-client", b.ip, "5001")) as client:
            assert readline(client) == "connected"
            send_line(client, "bulk:2000000")
            assert readline(client, timeout=10) == "echo-ok"


def test_spoofed_ip_and_mac_are_dropped(node: Node) -> None:
    a, b = node.pods["a"], node.pods["b"]
    frames = {
        "good": (a.mac, a.ip),
        "spoofed-ip": (a.mac, "10.10.0.99"),
        "spoofed-mac": ("02:00:0a:0a:00:99", a.ip),
    }
    with spawn(in_pod(node, "b", "udp-listen", b.ip, "9999", "2.5")) as listener:
        assert readline(listener) == "ready"
        for payload, (src_mac, src_ip) in frames.items():
            frame = udp_frame(
                src_mac=src_mac,
                dst_mac=b.mac,
                src_ip=src_ip,
                dst_ip=b.ip,
                port=9999,
                payload=payload.encode(),
            )
            sh(" ".join(in_pod(node, "a", "raw-send", "eth0", frame.hex())))
        listener.wait(timeout=10)
        assert listener.stdout is not None
        received = listener.stdout.read().decode().split()
    assert received == ["good"]

    base = f"in_port={a.ofport},dl_dst={b.mac}"
    for flow in (
        f"{base},dl_src={a.mac},udp,nw_src=10.10.0.99,nw_dst={b.ip}",
        f"{base},dl_src=02:00:0a:0a:00:99,udp,nw_src={a.ip},nw_dst={b.ip}",
        f"in_port={a.ofport},dl_src={a.mac},arp,arp_op=1,arp_spa=10.10.0.99,"
        f"arp_sha={a.mac},arp_tpa={b.ip}",
    ):
        trace = node.trace(flow)
        assert traced_tables(trace) == ["Classifier", "SpoofGuard"], trace
        assert "Datapath actions: drop" in trace, trace


def test_reconcile_twice_is_a_noop(node: Node) -> None:
    before = installed_cookies(node)
    desired = node.desired(round=node.round)
    result = node.run(reconcile(node.conn, desired))
    assert not result.changed and result.unchanged == len(desired)
    assert installed_cookies(node) == before


def test_new_round_removes_stale_flows_and_keeps_connections(node: Node) -> None:
    b = node.pods["b"]
    ghost = PodPort(ofport=50, name="fyke-t-gone", ip="10.10.0.50", mac="02:00:0a:0a:00:50")
    with spawn(in_pod(node, "b", "tcp-echo-server", b.ip, "5002", "20")) as server:
        assert readline(server) == "ready"
        with spawn(in_pod(node, "a", "tcp-client", b.ip, "5002")) as client:
            assert readline(client) == "connected"
            send_line(client, "before")
            assert readline(client) == "echo-ok"

            # The agent of the previous round also had a pod that is gone now.
            old = node.run(reconcile(node.conn, node.desired(node.round, extra=[ghost])))
            assert (old.added, old.modified, old.deleted) == (6, 0, 0)

            # Restart: a new round; every flow is rewritten, the ghost's flows deleted,
            # all in one bundle.
            node.round += 1
            desired = node.desired(node.round)
            new = node.run(reconcile(node.conn, desired))
            assert (new.added, new.modified, new.deleted) == (0, len(desired), 6)
            cookies = installed_cookies(node)
            assert len(cookies) == len(desired)
            assert {cookie_round(c) for c in cookies} == {node.round}
            assert "10.10.0.50" not in node.ofctl("dump-flows", "br-int")

            # The established connection survives (conntrack state is not in the flows).
            send_line(client, "after")
            assert readline(client) == "echo-ok"
            send_line(client, "bulk:500000")
            assert readline(client, timeout=10) == "echo-ok"


def test_ovsdb_ports(node: Node) -> None:
    ports = {p.name: p for p in node.run(node.db.list_ports("br-int"))}
    assert ports["fyke-gw0"].ofport == 2 and ports["fyke-gw0"].type == "internal"
    assert ports["fyke-t-a"].ofport == 3  # ofport_request honoured
    assert ports["fyke-t-b"].external_ids["fyke.io/pod-name"] == "b"
    assert ports["fyke-t-b"].external_ids["fyke.io/ip"] == node.pods["b"].ip

    extra = ovsdb.AddPort(bridge="br-int", name="fyke-t-x", type="internal", ofport_request=40)
    node.run(node.db.transact(extra))
    node.run(node.db.transact(extra))  # may_exist: a repeat is a no-op
    assert node.run(node.db.get_ofport("fyke-t-x")) == 40
    node.run(node.db.transact(ovsdb.DelPort(bridge="br-int", name="fyke-t-x")))
    node.run(node.db.transact(ovsdb.DelPort(bridge="br-int", name="fyke-t-x")))  # if_exists
    assert "fyke-t-x" not in {p.name for p in node.run(node.db.list_ports("br-int"))}


def test_openflow_module_does_not_import_eventlet() -> None:
    code = (
        "import sys, fyke.ovs.openflow, fyke.ovs.reconcile, fyke.ovs.daemons;"
        "sys.exit('eventlet' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=30).returncode == 0


def test_bundle_is_discarded_when_its_messages_fail_half_way(node: Node) -> None:
    """A generator that raises after sending part of a bundle: the switch must not keep the
    half-filled bundle open (someone committing its id later would apply half a change)."""
    cookie = make_cookie(round=0xFFF, feature=Feature.TRACEFLOW, obj=2)
    everything = (1 << 64) - 1
    enc = FlowEncoder()

    def messages() -> Iterator[bytes]:
        for i in range(600):  # more than one socket write
            match = (("reg2", i),)
            yield enc.flow_mod(
                Flow(table=tables.Output, priority=5, match=match, actions=(Drop(),), cookie=cookie)
            )
        raise RuntimeError("no more flows")

    bundle_id = node.conn._xid + 1  # the next xid: what bundle() opens
    with pytest.raises(RuntimeError, match="no more flows"):
        node.run(node.conn.bundle(messages()))
    flags = ofp.OFPBF_ATOMIC | ofp.OFPBF_ORDERED
    commit = parser.OFPBundleCtrlMsg(translate.DP, bundle_id, ofp.OFPBCT_COMMIT_REQUEST, flags, [])
    with pytest.raises(OpenFlowError):
        node.run(node.conn.request(commit))
    assert node.run(node.conn.dump_flows(cookie=cookie, cookie_mask=everything)) == []


def test_bundle_is_discarded_when_its_sync_is_cancelled(node: Node) -> None:
    cookie = make_cookie(round=0xFFF, feature=Feature.TRACEFLOW, obj=3)
    enc = FlowEncoder()

    def messages() -> Iterator[bytes]:
        for i in range(2000):
            if i == 300:  # after one full write: the task stops at its next await
                task = asyncio.current_task()
                assert task is not None
                task.cancel()
            yield enc.flow_mod(
                Flow(
                    table=tables.Output,
                    priority=5,
                    match=(("reg2", i),),
                    actions=(Drop(),),
                    cookie=cookie,
                )
            )

    bundle_id = node.conn._xid + 1
    with pytest.raises(asyncio.CancelledError):
        node.run(node.conn.bundle(messages()))
    flags = ofp.OFPBF_ATOMIC | ofp.OFPBF_ORDERED
    commit = parser.OFPBundleCtrlMsg(translate.DP, bundle_id, ofp.OFPBCT_COMMIT_REQUEST, flags, [])
    with pytest.raises(OpenFlowError):
        node.run(node.conn.request(commit))
    assert node.run(node.conn.dump_flows(cookie=cookie, cookie_mask=(1 << 64) - 1)) == []


@pytest.mark.parametrize("encoding", ["os-ken", "FlowEncoder"])
def test_bundle_is_all_or_nothing(node: Node, encoding: str) -> None:
    cookie = make_cookie(round=0xFFF, feature=Feature.TRACEFLOW, obj=1)
    good = Flow(
        table=tables.Output, priority=5, match=(("reg2", 7),), actions=(Drop(),), cookie=cookie
    )
    # OVS rejects a goto_table backwards in the pipeline.
    bad = Flow(
        table=tables.Output,
        priority=6,
        match=(("reg2", 8),),
        actions=(Goto(table=tables.Classifier),),
        cookie=cookie,
    )
    encode = translate.flow_mod if encoding == "os-ken" else FlowEncoder().flow_mod
    with pytest.raises(OpenFlowError):
        node.run(node.conn.bundle([encode(good), encode(bad)]))
    assert node.run(node.conn.dump_flows(cookie=cookie, cookie_mask=(1 << 64) - 1)) == []
