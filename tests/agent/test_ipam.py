from __future__ import annotations

import json
import threading
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from fyke.agent.ipam import Ipam, IpamError, IpamExhausted


def test_reserves_network_gateway_and_broadcast(tmp_path: Path) -> None:
    ipam = Ipam("10.0.1.0/29", tmp_path)
    assert ipam.gateway == IPv4Address("10.0.1.1")
    got = [ipam.allocate(f"c{i}", "eth0") for i in range(5)]
    assert [str(ip) for ip in got] == [f"10.0.1.{i}" for i in range(2, 7)]
    with pytest.raises(IpamExhausted, match=r"podCIDR 10\.0\.1\.0/29 is exhausted \(5 addresses"):
        ipam.allocate("c5", "eth0")


def test_exhaustion_message_slash_30(tmp_path: Path) -> None:
    ipam = Ipam("10.0.1.0/30", tmp_path)
    assert ipam.allocate("a", "eth0") == IPv4Address("10.0.1.2")
    with pytest.raises(IpamExhausted) as e:
        ipam.allocate("b", "eth0")
    assert str(e.value) == "podCIDR 10.0.1.0/30 is exhausted (1 addresses in use)"


def test_same_attachment_same_address_other_ifname_other_address(tmp_path: Path) -> None:
    ipam = Ipam("10.0.1.0/24", tmp_path)
    a = ipam.allocate("c1", "eth0")
    assert ipam.allocate("c1", "eth0") == a
    assert ipam.allocate("c1", "net1") != a
    assert len(ipam.allocations()) == 2


def test_release_is_idempotent_and_round_robin(tmp_path: Path) -> None:
    ipam = Ipam("10.0.1.0/24", tmp_path)
    a = ipam.allocate("c1", "eth0")
    assert ipam.release("c1", "eth0") == a
    assert ipam.release("c1", "eth0") is None
    assert ipam.release("never", "eth0") is None
    # A released address is not handed out again at once.
    assert ipam.allocate("c2", "eth0") != a


def test_restart_keeps_allocations(tmp_path: Path) -> None:
    first = Ipam("10.0.1.0/24", tmp_path)
    a = first.allocate("c1", "eth0", pod="x/a")
    b = first.allocate("c2", "eth0", pod="x/b")
    first.release("c1", "eth0")

    again = Ipam("10.0.1.0/24", tmp_path)
    assert [(x.container_id, x.ip, x.pod) for x in again.allocations()] == [("c2", b, "x/b")]
    assert again.allocate("c2", "eth0") == b
    fresh = again.allocate("c3", "eth0")
    assert fresh not in (a, b)
    state = json.loads((tmp_path / "ipam.json").read_text())
    assert state["podCIDR"] == "10.0.1.0/24"
    assert sorted(x["container_id"] for x in state["allocations"]) == ["c2", "c3"]
    assert [p.name for p in tmp_path.iterdir()] == ["ipam.json"]  # no temporary file left


def test_state_from_another_pod_cidr_is_refused(tmp_path: Path) -> None:
    Ipam("10.0.1.0/24", tmp_path).allocate("c1", "eth0")
    with pytest.raises(IpamError, match=r"podCIDR 10\.0\.1\.0/24, but this node's podCIDR"):
        Ipam("10.0.2.0/24", tmp_path)


def test_corrupt_state_is_reported(tmp_path: Path) -> None:
    (tmp_path / "ipam.json").write_text("{not json")
    with pytest.raises(IpamError, match="unreadable IPAM state"):
        Ipam("10.0.1.0/24", tmp_path)


def test_too_small_cidr(tmp_path: Path) -> None:
    with pytest.raises(IpamError, match="too small"):
        Ipam("10.0.1.0/31", tmp_path)


def test_threads_get_distinct_addresses(tmp_path: Path) -> None:
    ipam = Ipam("10.0.0.0/22", tmp_path)
    got: list[IPv4Address] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        for i in range(25):
            ip = ipam.allocate(f"t{n}-{i}", "eth0")
            with lock:
                got.append(ip)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 200
    assert len(Ipam("10.0.0.0/22", tmp_path).allocations()) == 200
