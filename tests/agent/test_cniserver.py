"""The agent CNI server in-process with real network namespaces and the in-memory attacher."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from fyke.agent.plumbing import host_ifname
from fyke.agent.ports import InMemoryPortAttacher, PodIdentity
from tests.agent.harness import Netns, config, host_veths, ip_json, needs_root, running_agent, sh

pytestmark = needs_root


def run(coro: Awaitable[Any]) -> Any:
    async def main() -> Any:
        return await asyncio.wait_for(coro, timeout=50)

    return asyncio.run(main())


def pod_state(netns: Netns, path: str) -> tuple[list[str], list[dict[str, Any]]]:
    name = netns.name_of(path)
    addrs = ip_json(f"-n {name} addr show dev eth0")
    inet = [
        f"{a['local']}/{a['prefixlen']}" for a in addrs[0]["addr_info"] if a["family"] == "inet"
    ]
    return inet, ip_json(f"-n {name} route show default")


def test_add_configures_the_pod(netns: Netns, sock_dir: Path) -> None:
    path = netns.make()

    async def scenario() -> None:
        async with running_agent(sock_dir) as agent:
            assert os.stat(agent.socket).st_mode & 0o777 == 0o600
            reply = await agent.call("ADD", "c-add", path, cfg=config(mtu=1400))
            result = reply["result"]
            host = host_ifname("c-add", "eth0")
            assert len(host) <= 15
            assert result["cniVersion"] == "1.1.0"
            host_if, pod_if = result["interfaces"]
            assert host_if["name"] == host and "sandbox" not in host_if
            assert pod_if == {
                "name": "eth0",
                "mac": pod_if["mac"],
                "mtu": 1400,
                "sandbox": path,
            }
            assert result["ips"] == [
                {"address": "10.77.0.2/24", "gateway": "10.77.0.1", "interface": 1}
            ]
            assert result["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.77.0.1"}]
            assert result["dns"] == {}

            inet, routes = pod_state(netns, path)
            assert inet == ["10.77.0.2/24"]
            assert [(r["dst"], r["gateway"], r["dev"]) for r in routes] == [
                ("default", "10.77.0.1", "eth0")
            ]
            pod_link = ip_json(f"-n {netns.name_of(path)} link show eth0")[0]
            assert pod_link["mtu"] == 1400 and "UP" in pod_link["flags"]
            assert pod_link["address"] == pod_if["mac"]
            assert "tx-checksumming: off" in netns.exec(path, "ethtool -k eth0")

            host_link = ip_json(f"link show {host}")[0]
            assert "NOARP" in host_link["flags"] and "UP" in host_link["flags"]
            assert host_link["mtu"] == 1400
            assert sh(f"sysctl -n net.ipv6.conf.{host}.disable_ipv6").strip() == "1"

            port = agent.ports.ports[host]
            assert port.ip == IPv4Address("10.77.0.2") and port.mac == pod_if["mac"]
            assert port.pod == PodIdentity(
                container_id="c-add",
                ifname="eth0",
                namespace="x",
                name="pod-c-add",
                uid="uid-pod-c-add",
            )

    run(scenario())


def test_check_passes_then_fails_when_the_veth_is_gone(netns: Netns, sock_dir: Path) -> None:
    path = netns.make()

    async def scenario() -> None:
        async with running_agent(sock_dir) as agent:
            added = (await agent.call("ADD", "c-chk", path))["result"]
            assert await agent.call("CHECK", "c-chk", path, cfg=config(prevResult=added)) == {
                "result": None
            }
            sh(f"ip link del {host_ifname('c-chk', 'eth0')}")
            err = (await agent.call("CHECK", "c-chk", path))["error"]
            assert err["code"] == 103 and "does not exist" in err["msg"]
            unknown = (await agent.call("CHECK", "nobody", path))["error"]
            assert unknown["code"] == 3

    run(scenario())


def test_check_notices_a_missing_address_and_a_detached_port(netns: Netns, sock_dir: Path) -> None:
    path = netns.make()

    async def scenario() -> None:
        async with running_agent(sock_dir) as agent:
            await agent.call("ADD", "c-chk2", path)
            netns.exec(path, "ip addr flush dev eth0")
            err = (await agent.call("CHECK", "c-chk2", path))["error"]
            assert err["code"] == 103 and "does not have 10.77.0.2/24" in err["msg"]
            await agent.call("ADD", "c-chk2", path)  # a repeated ADD repairs it
            assert (await agent.call("CHECK", "c-chk2", path)) == {"result": None}
            await agent.ports.detach(host_ifname("c-chk2", "eth0"))
            err = (await agent.call("CHECK", "c-chk2", path))["error"]
            assert err["code"] == 103 and "not attached" in err["msg"]

    run(scenario())


def test_repeated_add_keeps_the_address(netns: Netns, sock_dir: Path) -> None:
    path = netns.make()

    async def scenario() -> None:
        async with running_agent(sock_dir) as agent:
            first = (await agent.call("ADD", "c-re", path))["result"]
            again = (await agent.call("ADD", "c-re", path))["result"]
            assert first["ips"] == again["ips"]
            assert len(agent.ipam.allocations()) == 1 and len(agent.ports.ports) == 1

    run(scenario())


def test_del_is_idempotent(netns: Netns, sock_dir: Path) -> None:
    path = netns.make()
    before = host_veths()

    async def scenario() -> None:
        async with running_agent(sock_dir) as agent:
            await agent.call("ADD", "c-del", path)
            assert await agent.call("DEL", "c-del", path) == {"result": None}
            assert await agent.call("DEL", "c-del", path) == {"result": None}
            assert await agent.call("DEL", "c-del", "") == {"result": None}  # no CNI_NETNS
            assert await agent.call("DEL", "never-added", "") == {"result": None}
            assert agent.ipam.allocations() == [] and agent.ports.ports == {}
            assert host_veths() == before
            assert ip_json(f"-n {netns.name_of(path)} link show") == [
                link
                for link in ip_json(f"-n {netns.name_of(path)} link show")
                if link["ifname"] == "lo"
            ]

    run(scenario())


def test_parallel_add_del_cycles_leak_nothing(netns: Netns, sock_dir: Path) -> None:
    """100 ADD/DEL cycles, 20 at a time: addresses never shared, nothing left behind."""
    paths = [netns.make() for _ in range(20)]
    before = host_veths()

    async def scenario() -> None:
        async with running_agent(sock_dir) as agent:
            live: set[str] = set()

            async def worker(n: int) -> None:
                for cycle in range(5):
                    cid = f"par-{n}-{cycle}"
                    reply = await agent.call("ADD", cid, paths[n])
                    address = reply["result"]["ips"][0]["address"]
                    assert address not in live
                    live.add(address)
                    assert (await agent.call("CHECK", cid, paths[n])) == {"result": None}
                    live.discard(address)
                    assert (await agent.call("DEL", cid, paths[n])) == {"result": None}

            await asyncio.gather(*(worker(n) for n in range(20)))
            assert agent.ipam.allocations() == []
            assert agent.ports.ports == {}
            assert len(agent.server.locks) == 0

    run(scenario())
    assert host_veths() == before
    for path in paths:
        assert [link["ifname"] for link in ip_json(f"-n {Path(path).name} link show")] == ["lo"]


class FailingAttacher(InMemoryPortAttacher):
    async def attach(self, host_ifname: str, pod: PodIdentity, ip: IPv4Address, mac: str) -> int:
        await super().attach(host_ifname, pod, ip, mac)  # half done, then fail
        raise RuntimeError("OVSDB transaction failed")


def test_failed_add_leaves_nothing(netns: Netns, sock_dir: Path) -> None:
    path = netns.make()
    before = host_veths()

    async def scenario() -> None:
        failing = FailingAttacher()
        async with running_agent(sock_dir, attacher=failing) as agent:
            err = (await agent.call("ADD", "c-fail", path))["error"]
            assert err["code"] == 104
            assert "OVSDB transaction failed" in err["details"]
            assert agent.ipam.allocations() == [] and failing.ports == {}
            assert host_veths() == before
            assert [link["ifname"] for link in ip_json(f"-n {netns.name_of(path)} link show")] == [
                "lo"
            ]

    run(scenario())


def test_failed_plumbing_leaves_nothing_and_keeps_foreign_interfaces(
    netns: Netns, sock_dir: Path
) -> None:
    path = netns.make()
    netns.exec(path, "ip link add eth0 type veth peer name other0")

    async def scenario() -> None:
        async with running_agent(sock_dir) as agent:
            err = (await agent.call("ADD", "c-busy", path))["error"]
            assert err["code"] == 102 and "already has an interface eth0" in err["details"]
            gone = (await agent.call("ADD", "c-gone", "/run/netns/fyke-does-not-exist"))["error"]
            assert gone["code"] == 3
            assert agent.ipam.allocations() == [] and agent.ports.ports == {}

    run(scenario())
    names = {link["ifname"] for link in ip_json(f"-n {netns.name_of(path)} link show")}
    assert names == {"lo", "eth0", "other0"}


def test_gc_removes_unlisted_attachments(netns: Netns, sock_dir: Path) -> None:
    paths = {cid: netns.make() for cid in ("gc-a", "gc-b", "gc-c")}
    stray = host_ifname("gc-ghost", "eth0")
    ghost_ns = netns.make()

    async def scenario() -> None:
        async with running_agent(sock_dir) as agent:
            for cid, path in paths.items():
                await agent.call("ADD", cid, path)
            # A veth left over by a crash: no allocation, no port.
            sh(f"ip link add {stray} type veth peer name eth0 netns {netns.name_of(ghost_ns)}")
            valid = [{"containerID": "gc-a", "ifname": "eth0"}]
            reply = await agent.call("GC", cfg=config(**{"cni.dev/valid-attachments": valid}))
            assert reply == {"result": None}
            assert [a.container_id for a in agent.ipam.allocations()] == ["gc-a"]
            assert set(agent.ports.ports) == {host_ifname("gc-a", "eth0")}
            assert stray not in host_veths()
            assert host_ifname("gc-b", "eth0") not in host_veths()
            assert (await agent.call("CHECK", "gc-a", paths["gc-a"])) == {"result": None}
            # An empty list removes everything.
            assert (await agent.call("GC", cfg=config())) == {"result": None}
            assert agent.ipam.allocations() == [] and agent.ports.ports == {}

    run(scenario())


def test_status_and_readiness(netns: Netns, sock_dir: Path) -> None:
    path = netns.make()

    async def scenario() -> None:
        async with running_agent(sock_dir) as agent:
            assert (await agent.call("STATUS")) == {"result": None}
            agent.server.set_ready(False, "br-int is not up yet")
            status = (await agent.call("STATUS"))["error"]
            assert status == {"code": 50, "msg": "br-int is not up yet", "details": ""}
            assert (await agent.call("ADD", "c-st", path))["error"]["code"] == 11
            assert (await agent.call("DEL", "c-st", path)) == {"result": None}

    run(scenario())


def test_chained_add_appends_to_prev_result_and_speaks_0_4_0(netns: Netns, sock_dir: Path) -> None:
    path = netns.make()
    prev = {
        "cniVersion": "0.4.0",
        "interfaces": [{"name": "lo0", "sandbox": path}],
        "ips": [{"version": "4", "address": "192.0.2.5/32", "interface": 0}],
        "routes": [{"dst": "192.0.2.0/24"}],
        "dns": {"nameservers": ["192.0.2.53"]},
    }

    async def scenario() -> None:
        async with running_agent(sock_dir) as agent:
            cfg = {**config(prevResult=prev), "cniVersion": "0.4.0"}
            result = (await agent.call("ADD", "c-chain", path, cfg=cfg))["result"]
            assert result["cniVersion"] == "0.4.0"
            assert [i["name"] for i in result["interfaces"]] == [
                "lo0",
                host_ifname("c-chain", "eth0"),
                "eth0",
            ]
            assert all("mtu" not in i for i in result["interfaces"])
            assert result["ips"] == [
                {"version": "4", "address": "192.0.2.5/32", "interface": 0},
                {"version": "4", "address": "10.77.0.2/24", "gateway": "10.77.0.1", "interface": 2},
            ]
            assert result["routes"][0] == {"dst": "192.0.2.0/24"}
            assert result["dns"] == prev["dns"]

    run(scenario())


def test_malformed_requests(sock_dir: Path) -> None:
    async def scenario() -> None:
        async with running_agent(sock_dir) as agent:
            reader, writer = await asyncio.open_unix_connection(agent.socket)
            writer.write(b"{nope")
            writer.write_eof()
            assert b'"code": 6' in await reader.read()
            writer.close()
            bad = (await agent.call("ADD", "../x", "/run/netns/x"))["error"]
            assert bad["code"] == 4 and "CNI_CONTAINERID" in bad["msg"]
            bad = (await agent.call("ADD", "c", "/run/netns/x", cfg=config(mtu="big")))["error"]
            assert bad["code"] == 7 and "mtu" in bad["details"]

    run(scenario())
